"""Robust aggregation for the HaBa server: a per-client sanity score on a small server-side check set.

A payload can pass every format and range check and still be poisoned (flipped labels, noise, images
scaled to the edge of the allowed range). Before a client's bases join the global synthetic set, the
server composes its images and scores them against a few real examples it holds (``check``: a seeded
slice of its test split, removed from the central evaluation): the score is the percentage of the
client's composed images that (a) a nearest-class-mean classifier built from the check set assigns to
their label and (b) have an RMS within ``RMS_FACTOR`` of the check images' median RMS. Clients scoring
below ``ratio ×`` the round's median score are dropped with kind ``sanity``. The score needs no model
training, costs one distance matrix per client, and is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from haba_core import FactorizedDataset, ImageDataset, Preprocessor

RMS_FACTOR = 3.0


@dataclass
class CheckSet:
    """Class means and RMS range of the server's normalised check images."""

    means: Tensor  # (num_classes, D); NaN rows for classes absent from the check set
    rms_lo: float
    rms_hi: float


def split_check(test: ImageDataset, per_class: int, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """``(check, rest)``: up to ``per_class`` seeded examples of each class (never more than half of a
    class, so the central evaluation keeps examples of every class), and the remaining test examples."""
    rng = np.random.default_rng(seed)
    labels = test.labels.numpy()
    pick = []
    for c in range(test.num_classes):
        idx = np.flatnonzero(labels == c)
        pick.extend(rng.permutation(idx)[:min(per_class, len(idx) // 2)].tolist())
    mask = np.zeros(len(labels), dtype=bool)
    mask[pick] = True
    check = torch.from_numpy(np.flatnonzero(mask))
    rest = torch.from_numpy(np.flatnonzero(~mask))
    return test.subset(check), test.subset(rest)


def build_check(check: ImageDataset, preprocessor: Preprocessor) -> CheckSet:
    x = preprocessor(check.images).flatten(1).double()
    y = check.labels
    means = torch.full((check.num_classes, x.shape[1]), float("nan"), dtype=torch.float64)
    for c in range(check.num_classes):
        if bool((y == c).any()):
            means[c] = x[y == c].mean(0)
    rms = float(x.pow(2).mean(1).sqrt().median())
    return CheckSet(means, rms / RMS_FACTOR, rms * RMS_FACTOR)


def sanity_score(part: FactorizedDataset, check: CheckSet,
                 composed: tuple[Tensor, Tensor] | None = None) -> float:
    """Percentage of ``part``'s composed images that the check set's class means recognise (see module doc).

    ``composed`` (images, labels) are ``part``'s composed images if the caller has them already."""
    if composed is None:
        with torch.no_grad():
            composed = part.materialize()
    images, labels = composed
    x = images.detach().cpu().flatten(1).double()
    if x.shape[0] == 0:
        return 0.0
    known = ~torch.isnan(check.means[:, 0])
    dist = torch.cdist(x, torch.nan_to_num(check.means))
    dist[:, ~known] = float("inf")
    correct = dist.argmin(1) == labels.cpu()
    rms = x.pow(2).mean(1).sqrt()
    plausible = (rms >= check.rms_lo) & (rms <= check.rms_hi)
    return 100.0 * float((correct & plausible).double().mean())


def outliers(scores: dict[int, float], ratio: float) -> dict[int, str]:
    """Clients whose score is below ``ratio ×`` the median score, with the reason."""
    if not scores or ratio <= 0:
        return {}
    median = float(np.median(list(scores.values())))
    limit = ratio * median
    return {node: f"sanity score {s:.1f}% is below {ratio:g} x the round's median {median:.1f}%"
            for node, s in scores.items() if s < limit}
