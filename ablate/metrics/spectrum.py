"""Spectrum analysis: is the detail above the input's Nyquist new and correct, or not there?

Images (N, 3, r, r) in [0, 1] are compared with the ground truth at r and with bicubic
upsampling of the same s×s input (s = input size) in the frequency domain.

Spectra. Each image channel has its mean subtracted and is multiplied by a 2-D Hann window
(outer product of two periodic Hann windows of length r: edges do not leak a cross of
spurious high frequencies), then FFT'd. Power is |F|² / (r² · Σ w²), which makes Σ over all
bins the window-weighted variance of the channel: the same scene at two resolutions has the
same power per bin, and a bin is 1 cycle/image wide at every r. `radial_spectrum` averages the
power over images, channels and annuli of radius round(√(fy² + fx²)) = 0 … r/2 cycles/image.

The band. "Above the input's Nyquist" means the frequencies an s×s image cannot hold: bins
with max(|fy|, |fx|) > s/2 cycles/image (the r×r grid bounds them by r/2). This is the square
band, not the annulus √(fy² + fx²) > s/2: a diagonal frequency such as (15, 15) at s = 32 has
radius 21 > 16 but is representable in the input, so it carries no new information and is
left out. The input's own Nyquist bin (|f| = s/2) is not in the band either.

Band metrics, pooled over all images and channels (P model, B bicubic, T truth spectra):
  hf_energy_ratio        Σ|P|² / Σ|B|²                   (energy; says nothing of correctness)
  band_error_ratio       Σ|P − T|² / Σ|B − T|²           (< 1: closer to the truth than bicubic)
  band_coherence         Re Σ P·T* / √(Σ|P|² · Σ|T|²)    (signed coherence, in [−1, 1])
  band_coherence_bicubic the same with B
  truth_energy_ratio     Σ|T|² / Σ|B|²                   (how much in-band energy the truth has,
                                                         × bicubic's: the target for the first)
For real images Σ P·T* over the conjugate-symmetric band is real, so the coherence is the
correlation (cosine similarity) of the band-passed, windowed model and truth images: 1 when
the model's in-band content is the truth up to a positive scale, ~0 when unrelated, negative
when it is anti-correlated (detail with its sign flipped counts against agreement; a squared
coherence would count it as agreement).

The pooled figures are ratios of sums over images, so they are kept per image as well
(`band_sums`: the seven sums of each held-out crop) and `pool` rebuilds every ratio from any
subset or resample of those: the table's intervals over held-out images resample them.

The verdict built on these is in `ablate.metrics.verdict` (rule and thresholds there).
"""

from __future__ import annotations


import numpy as np
import torch
from torch import Tensor

from ablate.metrics.band import SUM_KEYS, pool

def _acc(device: torch.device) -> tuple[torch.dtype, torch.dtype]:
    if device.type == "mps":
        return torch.float32, torch.complex64
    return torch.float64, torch.complex128


def hann2d(r: int, device=None, dtype=torch.float64) -> Tensor:
    """(r, r) outer product of periodic Hann windows."""
    w = torch.hann_window(r, periodic=True, device=device, dtype=dtype)
    return w[:, None] * w[None, :]


def frequencies(r: int, device=None) -> tuple[Tensor, Tensor]:
    """(fy, fx), each (r, r), in cycles/image, matching `torch.fft.fft2`'s bin order."""
    f = torch.fft.fftfreq(r, d=1.0 / r, device=device)
    return torch.meshgrid(f, f, indexing="ij")


def band_mask(r: int, input_size: int, device=None) -> Tensor:
    """(r, r) bool: the bins above the input's Nyquist, max(|fy|, |fx|) > input_size / 2."""
    fy, fx = frequencies(r, device)
    return torch.maximum(fy.abs(), fx.abs()) > input_size / 2


def spectrum(imgs: Tensor) -> Tensor:
    """Complex spectra (N, C, r, r) of mean-subtracted, Hann-windowed images, scaled so that
    |F|² sums to the window-weighted variance of each channel."""
    if imgs.ndim != 4 or imgs.shape[-1] != imgs.shape[-2]:
        raise ValueError(f"spectrum: expected (N, C, r, r) images, got {tuple(imgs.shape)}")
    real, _ = _acc(imgs.device)
    x = imgs.to(real)
    r = x.shape[-1]
    w = hann2d(r, x.device, real)
    x = (x - x.mean(dim=(-2, -1), keepdim=True)) * w
    return torch.fft.fft2(x) / (r * w.pow(2).sum().sqrt())


def radial_spectrum(imgs: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power: freqs (K,) = 0 … r/2 cycles/image, power (K,) mean over images
    and channels of the mean power in each annulus round(radius) = k."""
    r = imgs.shape[-1]
    power = spectrum(imgs).abs().pow(2).mean(dim=(0, 1))  # (r, r)
    fy, fx = frequencies(r, power.device)
    k = torch.sqrt(fy**2 + fx**2).round().long().flatten()
    keep = k <= r // 2
    k, p = k[keep], power.flatten()[keep]
    sums = torch.zeros(r // 2 + 1, dtype=p.dtype, device=p.device).index_add_(0, k, p)
    counts = torch.bincount(k, minlength=r // 2 + 1).to(p.dtype)
    freqs = np.arange(r // 2 + 1, dtype=np.float64)
    return freqs, (sums / counts).cpu().numpy()


def band_energy(imgs: Tensor, input_size: int) -> float:
    """In-band power per image channel (mean over images and channels of the band sum).

    A grating A·cos(2π k x / r) with k inside the band gives ≈ A²/2 (its variance)."""
    m = band_mask(imgs.shape[-1], input_size, imgs.device)
    p = spectrum(imgs).abs().pow(2)[..., m]  # (N, C, bins)
    return float(p.sum(-1).mean())


def band_sums(pred: Tensor, bicubic: Tensor, truth: Tensor, input_size: int) -> dict[str, Tensor]:
    """Per image (summed over channels and in-band bins): Σ|P|², Σ|B|², Σ|T|², Σ|P − T|²,
    Σ|B − T|², Re Σ P·T*, Re Σ B·T*, each (N,) float64, keyed by SUM_KEYS. All three inputs
    are (N, 3, r, r) with r > input_size."""
    if not (pred.shape == bicubic.shape == truth.shape):
        shapes = ", ".join(str(tuple(x.shape)) for x in (pred, bicubic, truth))
        raise ValueError(f"band_sums: shapes differ: {shapes}")
    r = truth.shape[-1]
    if r <= input_size:
        raise ValueError(f"band_sums: no band above the input's Nyquist at r = {r} ≤ {input_size}")
    m = band_mask(r, input_size, truth.device)
    P, B, T = (spectrum(x)[..., m] for x in (pred, bicubic, truth))  # (N, C, bins)

    def per_image(z: Tensor) -> Tensor:
        return z.sum(dim=(1, 2))  # (N,)

    values = (P.abs().pow(2), B.abs().pow(2), T.abs().pow(2), (P - T).abs().pow(2),
              (B - T).abs().pow(2), (P * T.conj()).real, (B * T.conj()).real)
    return {k: per_image(v) for k, v in zip(SUM_KEYS, values)}


def band_metrics(
    pred: Tensor, bicubic: Tensor, truth: Tensor, input_size: int
) -> dict[str, float]:
    """hf_energy_ratio, band_error_ratio, band_coherence, band_coherence_bicubic,
    truth_energy_ratio (see module), pooled over the images. All three inputs are
    (N, 3, r, r) with r > input_size. NaN where a denominator is zero."""
    sums = band_sums(pred, bicubic, truth, input_size)
    return pool({k: v.cpu().numpy() for k, v in sums.items()})
