"""PNG grids of a distilled result: the bases (one row per class) and each basis through each hallucinator."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import save_image

from haba_core import FactorizedDataset
from haba_core.atomic import atomic_path

MIN_CELL = 32          # small images (digits 8×8, MNIST 28×28) are enlarged to at least this many pixels
MAX_ROWS = 20          # hallucinated.png shows the first basis of at most this many classes
MAX_HALLUCINATORS = 10
MAX_COLUMNS = 20       # bases.png shows at most this many bases per class


def _viewable(result: FactorizedDataset, x: Tensor) -> Tensor:
    """Model-space tensors with the image's shape (or the basis shape) → [0,1] pixels for a PNG.

    Bases smaller than the image are upsampled the way composition does; bases whose channel count
    differs from the image's are shown as their channel mean (grey), before de-whitening/de-normalising.
    """
    c, h, w = result.image_shape
    x = x.detach().float().cpu()
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    if x.shape[1] != c:
        x = x.mean(1, keepdim=True).expand(-1, c, -1, -1).contiguous()
    pre = result.preprocessor
    pre.to(torch.device("cpu"))
    with torch.no_grad():
        return pre.inverse(x)


def _enlarge(x: Tensor) -> Tensor:
    h = x.shape[-2]
    factor = max(1, math.ceil(MIN_CELL / h))
    return F.interpolate(x, scale_factor=factor, mode="nearest") if factor > 1 else x


def _save(grid_images: Tensor, nrow: int, path: Path) -> Path:
    with atomic_path(path) as tmp:
        save_image(grid_images, str(tmp), nrow=nrow, padding=2, pad_value=1.0, format="PNG")
    return path


def save_bases(result: FactorizedDataset, path: str | Path) -> Path:
    """``bases.png``: one row per class, its bases left to right (at most ``MAX_COLUMNS``)."""
    s = result.synthetic
    labels = s.labels.cpu()
    per_class = [torch.nonzero(labels == c).flatten()[:MAX_COLUMNS] for c in range(s.num_classes)]
    cols = max(1, max((len(i) for i in per_class), default=1))
    bases = _viewable(result, s.bases)
    blank = torch.ones_like(bases[:1])
    cells = []
    for idx in per_class:
        row = [bases[i:i + 1] for i in idx.tolist()]
        row += [blank] * (cols - len(row))
        cells.extend(row)
    return _save(_enlarge(torch.cat(cells)), cols, Path(path))


def save_hallucinated(result: FactorizedDataset, path: str | Path) -> Path | None:
    """``hallucinated.png`` (paper Fig. 4/12): per row one basis (first column) and its image through
    each hallucinator. One basis per class, first ``MAX_ROWS`` classes. ``None`` for plain results."""
    s = result.synthetic
    if not s.is_factorized:
        return None
    labels = s.labels.cpu()
    rows = []
    for c in range(s.num_classes):
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel():
            rows.append(int(idx[0]))
        if len(rows) >= MAX_ROWS:
            break
    n_h = min(s.num_hallucinators, MAX_HALLUCINATORS)
    device = s.bases.device
    b = torch.tensor(rows, device=device)
    with torch.no_grad():
        composed = s.compose(b.repeat_interleave(n_h), torch.arange(n_h, device=device).repeat(len(rows)))
    bases = _viewable(result, s.bases[b])
    images = _viewable(result, composed).view(len(rows), n_h, *result.image_shape)
    grid = torch.cat([bases.unsqueeze(1), images], dim=1).flatten(0, 1)
    return _save(_enlarge(grid), n_h + 1, Path(path))
