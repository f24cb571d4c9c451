"""PSNR, SSIM and the bicubic baseline, checked against scikit-image on real photo crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ablate.data.sources import load_source
from ablate.metrics.image import bicubic_upsample, psnr, ssim


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    """Six real 48×48 crops of bundled photos, float in [0, 1]."""
    photos = load_source("bundled", 48)
    out = [p[100:148, 120:168] for p in photos.train[:6]]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).double() / 255


def _degraded(x: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    noisy = blurred + 0.03 * torch.randn(x.shape, generator=g, dtype=x.dtype)
    return noisy.clamp(0, 1)


def test_psnr_matches_skimage(crops):
    y = _degraded(crops)
    ours = psnr(y, crops)
    ref = [peak_signal_noise_ratio(t.numpy(), p.numpy(), data_range=1.0) for t, p in zip(crops, y)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)
    assert psnr(crops, crops).tolist() == [100.0] * len(crops)  # capped, finite


def test_ssim_matches_skimage(crops):
    y = _degraded(crops)
    ours = ssim(y, crops)
    ref = [
        structural_similarity(
            p.numpy(), t.numpy(), channel_axis=0, data_range=1.0,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        )
        for t, p in zip(crops, y)
    ]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-9)
    assert 0.3 < min(ref) and max(ref) < 0.99  # a real, non-trivial comparison
    # float32 inputs (as models produce) are accumulated in float64: same numbers
    np.testing.assert_allclose(ssim(y.float(), crops.float()).numpy(), ref, atol=1e-6)


def test_ssim_identity_and_small_images(crops):
    assert torch.allclose(ssim(crops, crops), torch.ones(len(crops), dtype=crops.dtype))
    small = crops[:, :, :8, :8]
    s = ssim(small, _degraded(small))
    assert s.shape == (len(crops),) and torch.isfinite(s).all()
    assert torch.allclose(ssim(small, small), torch.ones(len(crops), dtype=crops.dtype))


def test_bicubic_upsample_clamps_and_keeps_size():
    edge = torch.zeros(2, 3, 8, 8)
    edge[..., 4:] = 1.0
    up = bicubic_upsample(edge, 32)
    raw = F.interpolate(edge, size=(32, 32), mode="bicubic", align_corners=False)
    assert raw.max() > 1.0 and raw.min() < 0.0  # bicubic overshoots at an edge …
    assert up.max() == 1.0 and up.min() == 0.0  # … and the baseline is clamped
    assert torch.equal(up, raw.clamp(0, 1))
    same = bicubic_upsample(edge, 8)
    assert torch.equal(same, edge) and same is not edge
