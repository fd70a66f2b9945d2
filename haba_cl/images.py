"""PNG grids of a distilled result: the bases (one row per class) and each basis through each hallucinator.

Every grid carries a caption line on top and the class name at the left of each row.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

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


def _save(grid_images: Tensor, nrow: int, path: Path, row_labels: list[str] | None = None, caption: str = "") -> Path:
    """The grid (2-pixel white padding) with ``row_labels`` in a left margin and ``caption`` above it."""
    pad = 2
    grid = make_grid(grid_images, nrow=nrow, padding=pad, pad_value=1.0)
    pixels = grid.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    body = Image.fromarray(pixels)
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(body)

    def size(text: str) -> tuple[int, int]:
        box = probe.textbbox((0, 0), text, font=font)
        return box[2] - box[0], box[3] - box[1]

    labels = row_labels or []
    margin = (max((size(t)[0] for t in labels), default=0) + 8) if labels else 0
    top = (size(caption)[1] + 10) if caption else 0
    width = max(body.width + margin, (size(caption)[0] + 8) if caption else 0)
    canvas = Image.new("RGB", (width, body.height + top), "white")
    canvas.paste(body, (margin, top))
    draw = ImageDraw.Draw(canvas)
    if caption:
        draw.text((4, 4), caption, fill="black", font=font)
    cell = grid_images.shape[-2] + pad
    for i, text in enumerate(labels):
        y = top + pad + i * cell + (cell - pad) // 2 - size(text)[1] // 2
        draw.text((4, y), text, fill="black", font=font)
    with atomic_path(path) as tmp:
        canvas.save(str(tmp), format="PNG")
    return path


def _class_names(result: FactorizedDataset) -> list[str]:
    names = list(getattr(result, "classes", None) or [])
    n = result.synthetic.num_classes
    return [str(names[c]) if c < len(names) else str(c) for c in range(n)]


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
    names = _class_names(result)
    dataset = result.meta.get("dataset") or "distilled set"
    caption = f"{dataset}: bases, one row per class (up to {cols} shown)"
    return _save(_enlarge(torch.cat(cells)), cols, Path(path), row_labels=names, caption=caption)


def save_hallucinated(result: FactorizedDataset, path: str | Path) -> Path | None:
    """``hallucinated.png`` (paper Fig. 4/12): per row one basis (first column) and its image through
    each hallucinator. One basis per class, first ``MAX_ROWS`` classes. ``None`` for plain results."""
    s = result.synthetic
    if not s.is_factorized:
        return None
    labels = s.labels.cpu()
    rows, row_classes = [], []
    for c in range(s.num_classes):
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel():
            rows.append(int(idx[0]))
            row_classes.append(c)
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
    names = _class_names(result)
    caption = f"left: one basis per class; then that basis through hallucinators 1-{n_h}"
    return _save(_enlarge(grid), n_h + 1, Path(path), row_labels=[names[c] for c in row_classes], caption=caption)
