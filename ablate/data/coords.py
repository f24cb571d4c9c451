"""Query coordinates: the one convention every part of ablate uses.

A pixel of an r×r image is addressed by its centre, (y, x) order, in [0, 1]:
    y_i = (i + 0.5) / r,   x_j = (j + 0.5) / r,
flattened row-major (y slow, x fast), so `make_coord(r)[i * r + j] == (y_i, x_j)` and a decoded
(B, r*r, 3) tensor reshapes to an image with `rearrange(t, 'b (h w) c -> b c h w', h=r)`.
One pixel at resolution r is 1/r coordinate units wide (0.01 ≈ 0.32 px at 32).
"""

from __future__ import annotations

import torch
from torch import Tensor


def make_coord(r: int, device=None, dtype=torch.float32) -> Tensor:
    """Pixel-centre coordinates of an r×r grid: (r*r, 2), (y, x) in [0, 1]."""
    c = (torch.arange(r, device=device, dtype=dtype) + 0.5) / r
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([yy, xx], dim=-1).reshape(r * r, 2)

