"""Training schedules: jitter placement semantics, multi-scale targets, curriculum, LR."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ablate.data.coords import make_coord
from ablate.imaging import downsample
from ablate.spec.config import (CurriculumConfig, CurriculumStage, DataConfig, JitterConfig,
                                MultiscaleConfig, TrainConfig)
from ablate.train.schedule import BatchMaker, lr_lambda, resolutions_for_epoch

DATA = DataConfig(hr_size=64, input_size=32, eval_resolutions=(32, 64))


def maker(jitter=JitterConfig(), multiscale=MultiscaleConfig(), seed=0):
    train = TrainConfig(jitter=jitter, multiscale=multiscale)
    g = torch.Generator().manual_seed(seed)
    return BatchMaker(DATA, train, g, torch.Generator().manual_seed(seed + 1), downsample)


def hr_batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(b, 3, 64, 64, generator=g)
    return hr, downsample(hr, 32)


def noise_of(batch, r):
    return batch.coords - make_coord(r).unsqueeze(0)


def test_no_jitter_queries_pixel_centres_and_target_is_input():
    m = maker()
    hr, x = hr_batch()
    b = m.make(hr, x, (32,))
    assert torch.equal(b.coords, make_coord(32).expand(4, -1, -1))
    assert torch.equal(b.targets, x.flatten(2).transpose(1, 2))


def test_per_epoch_reuses_one_draw_for_every_batch_of_the_epoch():
    m = maker(JitterConfig(placement="per_epoch", std=0.01))
    hr, x = hr_batch()
    m.jitter.new_epoch()
    n1, n2 = noise_of(m.make(hr, x, (32,)), 32), noise_of(m.make(hr, x, (32,)), 32)
    assert torch.equal(n1, n2)  # the seed's bug: same noise every batch
    assert torch.equal(n1[0], n1[1])  # and every image
    assert n1.abs().max() > 0
    m.jitter.new_epoch()
    n3 = noise_of(m.make(hr, x, (32,)), 32)
    assert not torch.equal(n1, n3)  # a new draw next epoch


def test_per_batch_draws_per_batch_shared_by_its_images():
    m = maker(JitterConfig(placement="per_batch", std=0.01))
    hr, x = hr_batch()
    n1, n2 = noise_of(m.make(hr, x, (32,)), 32), noise_of(m.make(hr, x, (32,)), 32)
    assert not torch.equal(n1, n2)
    assert torch.equal(n1[0], n1[3])


def test_per_sample_draws_per_image():
    m = maker(JitterConfig(placement="per_sample", std=0.01))
    hr, x = hr_batch()
    n = noise_of(m.make(hr, x, (32,)), 32)
    assert not torch.equal(n[0], n[1])


def test_gaussian_std_is_in_coordinate_units():
    m = maker(JitterConfig(placement="per_sample", dist="gaussian", std=0.02))
    hr, x = hr_batch(16)
    n = noise_of(m.make(hr, x, (32,)), 32)
    assert abs(n.std().item() - 0.02) < 0.001
    assert abs(n.mean().item()) < 0.001


def test_uniform_is_half_a_pixel_at_the_training_resolution():
    m = maker(JitterConfig(placement="per_sample", dist="uniform"),
              MultiscaleConfig(mode="random_res", resolutions=(64,)))
    hr, x = hr_batch(8)
    b = m.make(hr, x, (64,))
    n = noise_of(b, 64)
    half = 0.5 / 64
    assert n.abs().max() <= half + 1e-7 and n.abs().max() > 0.9 * half
    assert abs(n.std().item() - (1 / 64) / 12 ** 0.5) < 0.0005  # std of U(±½ px)


def test_random_res_targets_come_from_hr():
    m = maker(multiscale=MultiscaleConfig(mode="random_res", resolutions=(32, 48, 64)))
    hr, x = hr_batch()
    seen = set()
    for _ in range(30):
        b = m.make(hr, x, (32, 48, 64))
        seen.add(b.resolution)
        expect = downsample(hr, b.resolution).flatten(2).transpose(1, 2)
        assert torch.equal(b.targets, expect)
        assert b.coords.shape == (4, b.resolution ** 2, 2)
    assert seen == {32, 48, 64}


def test_upsampled_input_targets_carry_no_hr_detail():
    m = maker(multiscale=MultiscaleConfig(mode="upsampled_input", resolutions=(64,)))
    hr, x = hr_batch()
    b = m.make(hr, x, (64,))
    up = F.interpolate(x, size=(64, 64), mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.allclose(b.targets, up.flatten(2).transpose(1, 2))
    assert not torch.allclose(b.targets, hr.flatten(2).transpose(1, 2), atol=1e-2)


def test_hr_sample_queries_random_pixel_centres_of_the_hr_target():
    m = maker(multiscale=MultiscaleConfig(mode="hr_sample", resolutions=(64,), samples=100))
    hr, x = hr_batch()
    b = m.make(hr, x, (64,))
    assert b.coords.shape == (4, 100, 2) and b.targets.shape == (4, 100, 3)
    # each query is a pixel centre; its target is that HR pixel
    ij = (b.coords * 64 - 0.5).round().long()
    assert torch.allclose(b.coords, (ij.float() + 0.5) / 64)
    for k in range(4):
        vals = hr[k, :, ij[k, :, 0], ij[k, :, 1]].T
        assert torch.equal(vals, b.targets[k])
        assert len({tuple(p) for p in ij[k].tolist()}) == 100  # distinct pixels
    assert not torch.equal(ij[0], ij[1])


def test_curriculum_switches_resolution_sets_by_epoch():
    cur = CurriculumConfig(stages=(CurriculumStage(1, (32,)), CurriculumStage(3, (32, 48)),
                                   CurriculumStage(5, (32, 48, 64))))
    train = TrainConfig(epochs=6, multiscale=MultiscaleConfig(mode="random_res"), curriculum=cur)
    got = [resolutions_for_epoch(train, DATA, e) for e in range(1, 7)]
    assert got == [(32,), (32,), (32, 48), (32, 48), (32, 48, 64), (32, 48, 64)]
    off = dataclasses.replace(train, multiscale=MultiscaleConfig(), curriculum=CurriculumConfig())
    assert resolutions_for_epoch(off, DATA, 3) == (32,)


def test_lr_warmup_then_cosine():
    train = TrainConfig(epochs=10, lr=1e-3, warmup_epochs=1, min_lr=1e-5)
    f = lr_lambda(train, steps_per_epoch=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-6)  # half way through the cosine
    assert f(100) == pytest.approx(0.01)
    vals = [f(s) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))
