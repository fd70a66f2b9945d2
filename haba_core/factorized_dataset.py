"""FactorizedDataset: a distilled result (bases + hallucinators + metadata), its storage format, and a
torch ``Dataset`` that composes images online.

On disk: ``factorized.safetensors`` (``bases``, ``labels``, ``hallucinators.*``, optional ``lr`` and
``zca.*``) and ``meta.json`` (dataset, classes, image shape, normalisation, ZCA settings, hallucinator
configuration, objective, budget, seed, toolkit version, the SHA-256 of the tensor file and
``meta_sha256``, the SHA-256 of ``meta.json`` itself). ``meta.json`` is checked against a schema
(:mod:`haba_core.meta_schema`) before anything is built from it. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor
from torch.utils.data import Dataset

from .atomic import atomic_path, write_safetensors
from .budget import StorageReport, storage_of
from .errors import FormatError
from .factorization.hallucinator import HallucinatorConfig
from .factorization.synthetic_set import SyntheticSet
from .meta_schema import check_meta, meta_digest
from .preprocess import Preprocessor
from .version import FORMAT_VERSION, __version__
from .zca import ZCA

TENSOR_FILE = "factorized.safetensors"
META_FILE = "meta.json"
MAX_META_BYTES = 64 * 2**20


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class FactorizedDataset(Dataset):
    """A distilled dataset: ``synthetic`` (bases, labels, hallucinators) plus how to use it.

    Indexing returns ``(image, label)`` with basis ``i`` composed through a random hallucinator of its
    set (online composition, no gradients); ``len`` is the number of bases.
    """

    def __init__(self, synthetic: SyntheticSet, preprocessor: Preprocessor, classes: list[str],
                 meta: dict[str, Any] | None = None, learned_lr: float | None = None):
        self.synthetic = synthetic.eval()
        for p in self.synthetic.parameters():
            p.requires_grad_(False)
        self.preprocessor = preprocessor
        self.classes = list(classes)
        self.meta = dict(meta or {})
        # stored as float32 on disk: keep the in-memory value identical to what a reload gives
        self.learned_lr = None if learned_lr is None else float(torch.tensor(learned_lr, dtype=torch.float32))
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ Dataset protocol
    def __len__(self) -> int:
        return self.synthetic.num_bases

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        idx = torch.tensor([i], device=self.synthetic.bases.device)
        with torch.no_grad():
            if self.synthetic.is_factorized:
                h = torch.randint(self.synthetic.num_hallucinators, (1,)).to(idx.device)
                img = self.synthetic.compose(idx, h)
            else:
                img = self.synthetic.compose(idx)
        return img[0], self.synthetic.labels[i]

    # ------------------------------------------------------------------ convenience
    @property
    def num_classes(self) -> int:
        return self.synthetic.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.synthetic.image_shape

    @property
    def learned_lr_network(self) -> str | None:
        """The network the learned lr was learned through (``meta.json``'s ``config.network``), if known."""
        network = (self.meta.get("config") or {}).get("network")
        return network if self.learned_lr is not None and isinstance(network, str) else None

    @property
    def num_hallucinators(self) -> int:
        return self.synthetic.num_hallucinators

    def to(self, device: torch.device | str) -> "FactorizedDataset":
        self.synthetic.to(device)
        self.preprocessor.to(torch.device(device))
        return self

    def sample_epoch(self, generator: torch.Generator | None = None, per_basis: int = 1) -> tuple[Tensor, Tensor]:
        """Each basis through a randomly chosen hallucinator, batched under no-grad."""
        return self.synthetic.sample_epoch(generator, per_basis)

    def materialize(self) -> tuple[Tensor, Tensor]:
        """All |H|×|B| images (hallucinator-major) with labels."""
        return self.synthetic.materialize()

    def storage(self) -> StorageReport:
        """Exact stored numbers and bytes (bases + hallucinators + learned lr)."""
        s = self.synthetic
        extra = 1 if self.learned_lr is not None else 0
        return storage_of(s.num_bases, s.basis_shape, s.num_hallucinators, s.image_shape, s.num_classes,
                          s.hallucinator_config, s.per_class, extra)

    # ------------------------------------------------------------------ persistence
    def tensors(self) -> dict[str, Tensor]:
        """Everything stored in ``factorized.safetensors``."""
        s = self.synthetic
        out = {"bases": s.bases.detach(), "labels": s.labels}
        if s.hallucinators is not None:
            for name, p in s.hallucinators.named_parameters():
                out[f"hallucinators.{name}"] = p.detach()
        if self.learned_lr is not None:
            out["lr"] = torch.tensor([self.learned_lr], dtype=torch.float32)
        if self.preprocessor.zca is not None:
            for k, v in self.preprocessor.zca.state_dict().items():
                out[f"zca.{k}"] = v
        return out

    def describe(self) -> dict[str, Any]:
        """The ``meta.json`` content (without the checksum)."""
        s = self.synthetic
        zca = self.preprocessor.zca
        return {
            **self.meta,
            "format": "haba-factorized",
            "format_version": FORMAT_VERSION,
            "toolkit_version": __version__,
            "classes": self.classes,
            "num_classes": s.num_classes,
            "image_shape": list(s.image_shape),
            "basis_shape": list(s.basis_shape),
            "num_bases": s.num_bases,
            "num_hallucinators": s.num_hallucinators,
            "per_class_hallucinators": s.per_class,
            "hallucinator": asdict(s.hallucinator_config),
            "mean": list(self.preprocessor.mean),
            "std": list(self.preprocessor.std),
            "zca": None if zca is None else {"regularization": zca.regularization},
            "learned_lr": self.learned_lr,
            "storage": self.storage().as_dict(),
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``factorized.safetensors`` and ``meta.json`` into ``directory`` (atomically, file by file)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensor_path = directory / TENSOR_FILE
        write_safetensors(tensor_path, self.tensors(), metadata={"format": "haba-factorized"})
        meta = self.describe()
        meta["sha256"] = _sha256(tensor_path)
        meta = json.loads(json.dumps(meta))  # exactly what a reader will see
        meta["meta_sha256"] = meta_digest(meta)
        with atomic_path(directory / META_FILE) as tmp:
            tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu", verify: bool = True) -> "FactorizedDataset":
        """Load and validate a saved result; raises :class:`FormatError` if it is unusable."""
        directory = Path(directory)
        meta_path, tensor_path = directory / META_FILE, directory / TENSOR_FILE
        for p in (meta_path, tensor_path):
            if not p.exists():
                raise FormatError(f"{directory} is not a factorized dataset: {p.name} is missing")
        if meta_path.stat().st_size > MAX_META_BYTES:
            raise FormatError(f"{meta_path} is larger than {MAX_META_BYTES:,} bytes")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(f"{meta_path} is not valid JSON ({exc}); the directory may be truncated") from exc
        except RecursionError:
            raise FormatError(f"{meta_path} is nested too deeply") from None
        try:
            check_meta(meta)
        except FormatError as exc:
            raise FormatError(f"{directory}: {exc}") from None
        if verify and "meta_sha256" in meta and meta["meta_sha256"] != meta_digest(meta):
            raise FormatError(f"{meta_path} does not match its own checksum (meta_sha256: modified or damaged)")
        if verify and meta.get("sha256") and meta["sha256"] != _sha256(tensor_path):
            raise FormatError(f"{tensor_path} does not match the checksum in meta.json (truncated or modified)")
        try:
            tensors = load_file(str(tensor_path))
        except (SafetensorError, OSError) as exc:
            raise FormatError(f"{tensor_path} is unreadable ({exc}); the file may be truncated") from exc
        return cls.from_tensors(tensors, meta, device)

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], meta: dict[str, Any],
                     device: str | torch.device = "cpu") -> "FactorizedDataset":
        """Rebuild from a tensor dict and its metadata, checking every shape against the metadata."""
        check_meta(meta, file_format=False)
        try:
            image_shape = tuple(int(v) for v in meta["image_shape"])
            basis_shape = tuple(int(v) for v in meta["basis_shape"])
            num_classes = int(meta["num_classes"])
            num_bases = int(meta["num_bases"])
            n_h = int(meta["num_hallucinators"])
            per_class = bool(meta.get("per_class_hallucinators", False))
            hall_cfg = HallucinatorConfig(**meta.get("hallucinator", {}))
            classes = list(meta["classes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"meta.json lacks or garbles a required field: {exc}") from exc
        bases, labels = tensors.get("bases"), tensors.get("labels")
        if bases is None or labels is None:
            raise FormatError("factorized tensors must contain 'bases' and 'labels'")
        if tuple(bases.shape) != (num_bases, *basis_shape) or bases.dtype != torch.float32:
            raise FormatError(f"bases have shape {tuple(bases.shape)} {bases.dtype}, meta.json says "
                              f"{(num_bases, *basis_shape)} float32")
        if tuple(labels.shape) != (num_bases,) or labels.dtype != torch.int64:
            raise FormatError(f"labels have shape {tuple(labels.shape)} {labels.dtype}, expected ({num_bases},) int64")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise FormatError(f"labels outside 0..{num_classes - 1}")
        if len(classes) != num_classes:
            raise FormatError("meta.json lists a different number of classes than num_classes")
        try:
            # a throwaway generator: the initial weights are overwritten below and global RNGs stay untouched
            synthetic = SyntheticSet(bases, labels, image_shape, num_classes, n_h, hall_cfg, per_class,
                                     generator=torch.Generator().manual_seed(0))
        except Exception as exc:  # noqa: BLE001 - any construction failure means inconsistent metadata
            raise FormatError(f"inconsistent factorized metadata: {exc}") from exc
        if synthetic.hallucinators is not None:
            expected = dict(synthetic.hallucinators.named_parameters())
            given = {k[len("hallucinators."):]: v for k, v in tensors.items() if k.startswith("hallucinators.")}
            if set(given) != set(expected):
                raise FormatError(f"hallucinator tensors {sorted(given)} do not match the configuration "
                                  f"{sorted(expected)}")
            with torch.no_grad():
                for name, p in expected.items():
                    if given[name].shape != p.shape:
                        raise FormatError(f"hallucinator tensor {name} has shape {tuple(given[name].shape)}, "
                                          f"expected {tuple(p.shape)}")
                    p.copy_(given[name])
        elif any(k.startswith("hallucinators.") for k in tensors):
            raise FormatError("hallucinator tensors present but meta.json declares none")
        for name, t in tensors.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise FormatError(f"tensor {name} contains NaN or infinite values")
        zca = None
        if meta.get("zca"):
            try:
                zca = ZCA.from_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("zca.")},
                                          float(meta["zca"].get("regularization", 0.1)))
            except Exception as exc:  # noqa: BLE001
                raise FormatError(f"ZCA statistics missing or damaged: {exc}") from exc
        pre = Preprocessor(tuple(meta.get("mean", [0.0] * image_shape[0])),
                           tuple(meta.get("std", [1.0] * image_shape[0])), zca)
        lr = None
        if "lr" in tensors:
            lr = float(tensors["lr"].reshape(-1)[0])
            if not math.isfinite(lr) or lr <= 0:
                raise FormatError(f"stored learning rate {lr} is not a positive number")
        keep = {k: v for k, v in meta.items() if k in ("dataset", "objective", "parameterization", "seed",
                                                       "budget", "config", "timings")}
        ds = cls(synthetic, pre, classes, keep, lr)
        return ds.to(device)
