"""Between a client's :class:`haba_core.FactorizedDataset` and the tensors + metadata it uploads."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from haba_core import FactorizedDataset, Preprocessor


def drop_classes(result: FactorizedDataset, keep: Tensor) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors + metadata of ``result`` keeping only bases whose label is in ``keep`` (a bool mask per class)."""
    tensors = dict(result.tensors())
    meta = result.describe()
    mask = keep.to(tensors["labels"].device)[tensors["labels"]]
    if bool(mask.all()):
        return tensors, meta
    tensors["bases"] = tensors["bases"][mask].contiguous()
    tensors["labels"] = tensors["labels"][mask].contiguous()
    meta["num_bases"] = int(mask.sum())
    meta.pop("storage", None)
    return tensors, meta


def to_factorized(tensors: Mapping[str, Tensor], meta: Mapping[str, Any], preprocessor: Preprocessor) -> FactorizedDataset:
    """``FactorizedDataset.from_tensors`` with the server's own normalisation (client mean/std are ignored)."""
    meta = dict(meta)
    meta["mean"], meta["std"] = list(preprocessor.mean), list(preprocessor.std)
    meta["zca"] = None
    result = FactorizedDataset.from_tensors(dict(tensors), meta)
    result.preprocessor = Preprocessor(tuple(preprocessor.mean), tuple(preprocessor.std))
    return result
