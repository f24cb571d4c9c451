"""Per-image quality metrics. Images: (N, 3, H, W) in [0, 1]. (The bicubic baseline and
the BT.601 luma live in ablate/imaging.py.)

PSNR: 10·log10(1 / MSE) over the three RGB channels of one image; an MSE below `MSE_FLOOR`
counts as the floor (100 dB), so identical images give a finite number and a mean over images
stays finite.

SSIM (Wang et al. 2004) with the usual constants: Gaussian window 11×11, σ = 1.5, K1 = 0.01,
K2 = 0.03, data range 1, population (not sample) covariances, computed per channel over the
"valid" region (no padding) and averaged over channels and positions. This equals
`skimage.metrics.structural_similarity(a, b, channel_axis=0, data_range=1,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)` (skimage filters with
reflection and then crops the 5-pixel border, which is the valid region). Images smaller than
11 pixels use the largest odd window that fits (same σ, truncated), where skimage would refuse.

Y-PSNR, the SR literature's PSNR: the ITU-R BT.601 luma of the RGB in [0, 1],
    Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255
(MATLAB's rgb2ycbcr, which SR papers evaluate with, scaled to [0, 1]), PSNR with peak 1 (= peak
255 on 8-bit Y) after shaving `y_shave(r, s)` pixels off every border: the scale r / s rounded
up for an upsampled image (r > s; 2 at ×2, 4 at ×4), none at or below the input size (nothing
was upsampled there). Unlike most papers, predictions are not rounded to 8 bits first.

Metrics are accumulated in float64 (float32 where the device has no float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ablate.imaging import rgb_to_y

MSE_FLOOR = 1e-10  # PSNR cap: 100 dB
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _acc_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def psnr(pred: Tensor, truth: Tensor) -> Tensor:
    """Per-image PSNR in dB: (N,) from (N, 3, H, W) pairs in [0, 1]."""
    if pred.shape != truth.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(pred.shape)} vs {tuple(truth.shape)}")
    dt = _acc_dtype(pred.device)
    mse = (pred.to(dt) - truth.to(dt)).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(MSE_FLOOR))


def y_shave(r: int, input_size: int) -> int:
    """Border pixels Y-PSNR leaves out at resolution r: ceil(r / input_size) above the input
    size (the scale, as SR papers shave), 0 at or below it."""
    return -(-r // input_size) if r > input_size else 0


def psnr_y(pred: Tensor, truth: Tensor, shave: int) -> Tensor:
    """Per-image Y-PSNR in dB: (N,) from (N, 3, H, W) RGB pairs in [0, 1], `shave` border
    pixels left out on every side (see the module docstring)."""
    if pred.shape != truth.shape:
        raise ValueError(f"psnr_y: shapes differ, {tuple(pred.shape)} vs {tuple(truth.shape)}")
    h, w = pred.shape[-2:]
    if 2 * shave >= min(h, w):
        raise ValueError(f"psnr_y: shaving {shave} px leaves nothing of {h}×{w} images")
    dt = _acc_dtype(pred.device)
    d = rgb_to_y(pred.to(dt)) - rgb_to_y(truth.to(dt))
    if shave:
        d = d[..., shave:h - shave, shave:w - shave]
    mse = d.pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(MSE_FLOOR))


def _gaussian_window(size: int, sigma: float, device, dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: Tensor, truth: Tensor) -> Tensor:
    """Per-image SSIM: (N,) from (N, C, H, W) pairs in [0, 1] (mean over channels)."""
    if pred.shape != truth.shape:
        raise ValueError(f"ssim: shapes differ, {tuple(pred.shape)} vs {tuple(truth.shape)}")
    dt = _acc_dtype(pred.device)
    x, y = pred.to(dt), truth.to(dt)
    n, c, h, w = x.shape
    size = min(SSIM_WINDOW, min(h, w) - (1 - min(h, w) % 2))  # largest odd ≤ side
    g = _gaussian_window(size, SSIM_SIGMA, x.device, dt)
    gy = g.view(1, 1, size, 1).expand(c, 1, size, 1)
    gx = g.view(1, 1, 1, size).expand(c, 1, 1, size)

    def filt(t: Tensor) -> Tensor:  # separable Gaussian, valid region, per channel
        return F.conv2d(F.conv2d(t, gy, groups=c), gx, groups=c)

    mx, my = filt(x), filt(y)
    vx = filt(x * x) - mx * mx
    vy = filt(y * y) - my * my
    cxy = filt(x * y) - mx * my
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K·L)² with data range L = 1
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)
