"""The pixel operations every floor shares: the one resampler, the bicubic baseline, and
BT.601 luma. Images: (N, 3, H, W) float in [0, 1]. Below data and metrics (both use them);
imports torch only.

- `downsample(hr, r)`: antialiased bicubic resize to r×r, clamped — the ONE way a lower
  resolution is made anywhere (inputs, multi-scale targets, the LR-consistency check, the
  half-resolution floor). Identity at the same size.
- `bicubic_upsample(x, r)`: torch bicubic (a = −0.75), align_corners=False, clamped — the
  baseline every model is compared with. A copy at the same size.
- `BT601` and `rgb_to_y`: the ITU-R BT.601 luma of SR papers' Y-PSNR (MATLAB's rgb2ycbcr,
  scaled to [0, 1]); data/texture.py uses the same weights without the offset.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

BT601 = (65.481, 128.553, 24.966)  # Y = 16/255 + (BT601 · RGB) / 255, RGB in [0, 1]


def downsample(hr: Tensor, r: int) -> Tensor:
    """Antialiased bicubic resize of (N, 3, H, H) images in [0, 1] to (N, 3, r, r), clamped.

    Identity (the same tensor) when r equals the size. Used for upsampling too (r > H) only by
    the `upsampled_input` recipe; ground truth is never upsampled.
    """
    if hr.shape[-1] == r and hr.shape[-2] == r:
        return hr
    out = F.interpolate(hr, size=(r, r), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def bicubic_upsample(x: Tensor, r: int) -> Tensor:
    """(N, 3, s, s) → (N, 3, r, r): torch bicubic (a = −0.75), align_corners=False, clamped.

    The baseline every model is compared with. Identity (a copy) when r equals s.
    """
    if x.shape[-1] == r and x.shape[-2] == r:
        return x.clone()
    out = F.interpolate(x, size=(r, r), mode="bicubic", align_corners=False)
    return out.clamp_(0.0, 1.0)


def rgb_to_y(x: Tensor) -> Tensor:
    """(N, 3, H, W) RGB in [0, 1] → (N, H, W) BT.601 luma in [16/255, 235/255]."""
    r, g, b = x.unbind(-3)
    return 16.0 / 255.0 + (BT601[0] * r + BT601[1] * g + BT601[2] * b) / 255.0
