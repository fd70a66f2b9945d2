"""Decode a list of image files with PIL into one uint8 N x C x H x W tensor."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import FormatError

GRAY_MODES = ("L", "1")


def decode_images(files: Sequence[Path], channels: int | None = None) -> torch.Tensor:
    """Decode ``files`` (all the same size) to uint8 N x C x H x W.

    Images are converted to RGB; if every image is grayscale they keep 1 channel. ``channels``
    (1 or 3) forces the channel count, e.g. to match a train split.
    """
    arrays: list[np.ndarray] = []
    size: tuple[int, int] | None = None
    for f in files:
        try:
            with Image.open(f) as im:
                gray = im.mode in GRAY_MODES if channels is None else channels == 1
                arr = np.asarray(im.convert("L" if gray else "RGB"))
        except Image.DecompressionBombError as exc:
            raise FormatError(f"{f}: refused to decode ({exc})") from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise FormatError(f"{f}: cannot decode image ({exc})") from exc
        if size is None:
            size = arr.shape[:2]
        elif arr.shape[:2] != size:
            raise FormatError(
                f"all images must share one size: {files[0]} is {size[1]}x{size[0]} but {f} is "
                f"{arr.shape[1]}x{arr.shape[0]} (width x height); resize the data set first"
            )
        arrays.append(arr)
    if not arrays:
        raise ValueError("no image files to decode")
    if all(a.ndim == 2 for a in arrays):
        return torch.from_numpy(np.stack(arrays)[:, None]).contiguous()
    rgb = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    return torch.from_numpy(np.stack(rgb).transpose(0, 3, 1, 2)).contiguous()
