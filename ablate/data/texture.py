"""Texture of a crop: the rule that keeps nearly featureless crops out of training.

    texture(crop) = mean over neighbouring pixel pairs (horizontal and vertical) inside the crop
                    of (Y[a] − Y[b])²,   Y = (65.481 R + 128.553 G + 24.966 B) / 255, RGB in [0, 1]

i.e. the mean squared luma step between adjacent pixels (BT.601 luma, the Y of Y-PSNR without
its constant offset). It is unchanged by the 8 flips/rotations training applies, so it is
computed once per crop *position* of a photo: `texture_map` gives every valid top-left corner
in O(1) each from summed-area tables of the two squared-difference images. `DataConfig.
min_texture` rejects positions below it; training draws uniformly among the rest
(`ablate.data.dataset.TrainData`). A flat crop scores 0; a crop of 8-bit noise ~0.02; the
default threshold 2e-4 is an RMS step of ≈ 3.6/255 per pixel.
"""

from __future__ import annotations

import numpy as np

from ablate.imaging import BT601

_CHUNK_PIXELS = 1 << 24  # pixels per batch of same-size photos (bounds float64 memory)


def luma(imgs: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) → float64 (..., H, W) BT.601 luma without offset, in [0, 219/255]."""
    a = np.asarray(imgs, dtype=np.float64) / 255.0
    return (BT601[0] * a[..., 0] + BT601[1] * a[..., 1] + BT601[2] * a[..., 2]) / 255.0


def crop_texture(crop: np.ndarray) -> float:
    """The texture of one uint8 (h, w, 3) crop, computed directly (the definition)."""
    y = luma(crop)
    dx = np.diff(y, axis=1) ** 2
    dy = np.diff(y, axis=0) ** 2
    return float((dx.sum() + dy.sum()) / (dx.size + dy.size))


def _sat(g: np.ndarray) -> np.ndarray:
    """Summed-area table with a zero first row and column: (N, h+1, w+1)."""
    s = np.zeros((g.shape[0], g.shape[1] + 1, g.shape[2] + 1))
    np.cumsum(g, axis=1, out=s[:, 1:, 1:])
    np.cumsum(s[:, 1:, 1:], axis=2, out=s[:, 1:, 1:])
    return s


def _box(s: np.ndarray, h: int, w: int, ny: int, nx: int) -> np.ndarray:
    """Sums of every h×w window whose top-left corner is in [0, ny) × [0, nx)."""
    return s[:, h:h + ny, w:w + nx] - s[:, :ny, w:w + nx] - s[:, h:h + ny, :nx] + s[:, :ny, :nx]


def texture_map(imgs: np.ndarray, size: int) -> np.ndarray:
    """Texture of every size×size crop of same-size photos.

    imgs: uint8 (N, H, W, 3) → float64 (N, H − size + 1, W − size + 1); entry [n, y, x] is
    `crop_texture(imgs[n, y:y+size, x:x+size])`. size 1 has no neighbours: texture 0.
    """
    n, h, w = imgs.shape[:3]
    ny, nx = h - size + 1, w - size + 1
    if ny < 1 or nx < 1:
        return np.zeros((n, max(ny, 0), max(nx, 0)))
    if size < 2:
        return np.zeros((n, ny, nx))
    out = np.empty((n, ny, nx))
    step = max(1, _CHUNK_PIXELS // (h * w))
    pairs = 2 * size * (size - 1)
    for i in range(0, n, step):
        y = luma(imgs[i:i + step])
        sx = _sat(np.diff(y, axis=2) ** 2)  # (b, H, W−1): pairs (x, x+1)
        sy = _sat(np.diff(y, axis=1) ** 2)  # (b, H−1, W): pairs (y, y+1)
        out[i:i + step] = (_box(sx, size, size - 1, ny, nx) + _box(sy, size - 1, size, ny, nx)) / pairs
    return out
