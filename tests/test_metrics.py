"""PSNR, SSIM and the bicubic baseline, checked against scikit-image on real photo crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ablate.data.sources import load_source
from ablate.metrics.image import psnr, ssim
from ablate.imaging import bicubic_upsample


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


def test_psnr_y_equals_an_independent_computation():
    """BT.601 luma as skimage's rgb2ycbcr (MATLAB's, which SR papers use), border shaved by
    hand, PSNR from skimage with the 8-bit range: the SR literature's number."""
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio

    from ablate.metrics.image import psnr_y, y_shave

    from ablate.imaging import rgb_to_y

    g = torch.Generator().manual_seed(5)
    truth = torch.rand(3, 3, 64, 64, generator=g, dtype=torch.float64)
    pred = (truth + 0.05 * torch.randn(truth.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    pred[:, :, :4] = 0.0  # a bad border: shaving must leave it out
    for shave in (0, 2, 4):
        ours = psnr_y(pred, truth, shave)
        for i in range(3):
            a = rgb2ycbcr(pred[i].permute(1, 2, 0).numpy())[..., 0]  # Y in [16, 235]
            b = rgb2ycbcr(truth[i].permute(1, 2, 0).numpy())[..., 0]
            if shave:
                a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
            ref = peak_signal_noise_ratio(b, a, data_range=255)
            assert float(ours[i]) == pytest.approx(ref, abs=1e-9)
    y = rgb_to_y(torch.tensor([[[[0.0]], [[0.0]], [[0.0]]], [[[1.0]], [[1.0]], [[1.0]]]]))
    assert y.flatten().tolist() == pytest.approx([16 / 255, 235 / 255])
    # the shave is the scale: 2 at ×2, 4 at ×4, ceil for non-integer scales, none at the input
    assert [y_shave(r, 32) for r in (16, 32, 48, 64, 128)] == [0, 0, 2, 2, 4]
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr_y(pred[..., :8, :8], truth[..., :8, :8], 4)
