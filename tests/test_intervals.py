"""Intervals and tests over seeds *and* held-out images (ablate.table.stats, two levels), on
synthetic cases whose answer is known, and in the table built from per-image result files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.results.read import load_results
from ablate.table.build import build_table
from ablate.table.format import render
from ablate.table.stats import (bootstrap_ci, paired_t_pvalue, two_level_bootstrap_ci,
                                two_level_pvalue)
from synthetic_results import Variant, make_study

runner = CliRunner()
MU = 0.3  # the true mean difference of every simulation


def simulate(rng, seeds, photos, crops, sd_seed, sd_photo, sd_crop, sd_noise, mu=MU):
    """d[s, i] = μ + a_s + b_photo(i) + c_i + e_si: seed, photo, crop and seed × crop effects,
    the images crossed with the seeds (every seed sees the same crops, as in a study)."""
    a = rng.normal(0, sd_seed, (seeds, 1))
    b = np.repeat(rng.normal(0, sd_photo, photos), crops)[None]
    c = rng.normal(0, sd_crop, (1, photos * crops))
    e = rng.normal(0, sd_noise, (seeds, photos * crops))
    return mu + a + b + c + e, np.repeat([f"p{k}" for k in range(photos)], crops)


def analytic_se(seeds, photos, crops, sd_seed, sd_photo, sd_crop, sd_noise):
    n = photos * crops
    return math.sqrt(sd_seed**2 / seeds + sd_photo**2 / photos + sd_crop**2 / n
                     + sd_noise**2 / (seeds * n))


def run(case, sims, rng):
    se = analytic_se(*case)
    widths, covered, seed_only_covered = [], 0, 0
    for _ in range(sims):
        d, photos = simulate(rng, *case)
        lo, hi = two_level_bootstrap_ci(d, photos)
        widths.append(hi - lo)
        covered += lo <= MU <= hi
        if d.shape[0] > 1:
            s_lo, s_hi = bootstrap_ci(d.mean(1))  # what the table did before: seeds only
            seed_only_covered += s_lo <= MU <= s_hi
    return np.mean(widths) / (2 * 1.96 * se), covered / sims, seed_only_covered / sims


def test_two_level_interval_has_the_analytic_width_and_coverage():
    # 10 seeds × 30 held-out photos (one crop each); the photo effect dominates
    ratio, coverage, seed_only = run((10, 30, 1, 0.2, 1.0, 0.0, 0.3), 200, np.random.default_rng(0))
    assert 0.9 < ratio < 1.1  # measured 0.99
    assert 0.9 <= coverage <= 0.99  # measured 0.945
    assert seed_only < 0.65  # seeds alone ignore the shared photo effect (measured 0.47)


def test_one_seed_interval_is_over_photos_not_crops():
    rng = np.random.default_rng(1)
    case = (1, 20, 3, 0.0, 0.5, 0.2, 0.2)  # 20 photos × 3 crops, one seed
    ratio, coverage, _ = run(case, 200, rng)
    assert 0.88 < ratio < 1.1 and coverage >= 0.9  # measured 0.97, 0.95
    d, photos = simulate(rng, *case)
    lo, hi = two_level_bootstrap_ci(d, photos)
    crops_lo, crops_hi = two_level_bootstrap_ci(d, np.arange(d.shape[1]))  # crops as units
    assert (crops_hi - crops_lo) < 0.8 * (hi - lo)  # crops of a photo are not independent
    assert two_level_bootstrap_ci(d[:, :3], photos[:3]) is None  # one seed, one photo


def test_the_same_photo_draw_serves_every_seed():
    """Seeds × photos are crossed: a resample must not draw photos anew for each seed, which
    would shrink the photo term by the number of seeds."""
    rng = np.random.default_rng(2)
    case = (8, 20, 1, 0.05, 0.6, 0.0, 0.05)
    ratio, coverage, seed_only = run(case, 150, rng)
    assert 0.88 < ratio < 1.1 and coverage >= 0.88  # measured 0.97, 0.93
    assert seed_only < 0.4  # measured 0.18
    # a photo-only signal seen identically by all 8 seeds: the interval is that of 10 photos
    d = np.tile(np.linspace(-1, 1, 10), (8, 1)) + MU
    lo, hi = two_level_bootstrap_ci(d, np.arange(10))
    one_seed = two_level_bootstrap_ci(d[:1], np.arange(10))
    assert (lo, hi) == pytest.approx(one_seed, rel=0.05)


def test_t_test_with_both_components_holds_its_level():
    rng = np.random.default_rng(3)
    case = (5, 12, 4, 0.1, 0.4, 0.1, 0.2)
    rejections = seed_only = 0
    for _ in range(600):
        d, photos = simulate(rng, *case, mu=0.0)
        p, v_seed, v_photo = two_level_pvalue(d, photos)
        rejections += p < 0.05
        seed_only += paired_t_pvalue(d.mean(1)) < 0.05
    assert 0.02 < rejections / 600 < 0.09  # measured 0.05
    assert seed_only / 600 > 0.3  # the seed-only test ignores the photo draw


def test_t_test_reduces_to_the_classic_ones():
    rng = np.random.default_rng(4)
    d = rng.normal(0.2, 1.0, (6, 1))  # one image: the paired t-test over seeds
    p, _, v_photo = two_level_pvalue(d, ["a"])
    assert v_photo == 0.0 and p == pytest.approx(sps.ttest_1samp(d[:, 0], 0).pvalue, rel=1e-9)
    d = rng.normal(0.2, 1.0, (1, 9))  # one seed, every image its own photo: over images
    p, v_seed, _ = two_level_pvalue(d, np.arange(9))
    assert v_seed == 0.0 and p == pytest.approx(sps.ttest_1samp(d[0], 0).pvalue, rel=1e-9)
    # both components: Welch–Satterthwaite by hand
    d, photos = simulate(rng, 4, 5, 2, 0.3, 0.3, 0.1, 0.1)
    p, v_seed, v_photo = two_level_pvalue(d, photos)
    assert v_seed == pytest.approx(np.var(d.mean(1), ddof=1) / 4)
    assert v_photo == pytest.approx(np.var(d.reshape(4, 5, 2).mean(axis=(0, 2)), ddof=1) / 5)
    df = (v_seed + v_photo) ** 2 / (v_seed**2 / 3 + v_photo**2 / 4)
    t = d.mean() / math.sqrt(v_seed + v_photo)
    assert p == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# In the table
# ---------------------------------------------------------------------------------------------

PHOTOS = ["a", "a", "b", "b", "c", "c", "d"]  # 7 held-out crops of 4 photos
BASE = np.array([30.0, 31.0, 25.0, 26.5, 33.0, 32.0, 28.0])
GAIN = np.array([0.4, 0.5, 0.1, 0.2, 0.8, 0.6, 0.3])  # the variant's gain per crop


def _images(seed_shift):
    def images(variant, grid, seed, r):
        vals = BASE + (GAIN if variant == "B" else 0.0) + seed_shift(variant, seed)
        return [{"image": i, "photo": p, "psnr": v, "psnr_y": v + 1.5}
                for i, (p, v) in enumerate(zip(PHOTOS, vals))]
    return images


def _values(seed_shift):
    def values(variant, grid, seed, r):
        m = float((BASE + (GAIN if variant == "B" else 0.0) + seed_shift(variant, seed)).mean())
        nan = float("nan")
        return {"psnr": m, "psnr_y": m + 1.5, "psnr_bicubic": 24.0 if r > 32 else nan,
                "psnr_y_bicubic": 25.5 if r > 32 else nan}
    return values


def test_table_with_one_seed_gives_an_interval_over_photos(tmp_path):
    def shift(variant, seed):
        return 0.0

    make_study(tmp_path, "one", (Variant("A", "Alpha"), Variant("B", "Beta")), seeds=(0,),
               resolutions=(64,), values=_values(shift), images=_images(shift),
               history=False, artifacts=False)
    (s,) = load_results(tmp_path / "one")
    t = build_table(s, "psnr")
    c = next(r for r in t.rows if r.name == "B").deltas[64]
    assert c.delta == pytest.approx(GAIN.mean()) and c.n == 1 and c.n_images == 7
    assert c.n_photos == 4
    assert (c.ci_low, c.ci_high) == pytest.approx(two_level_bootstrap_ci(GAIN[None], PHOTOS))
    assert 0 < c.ci_low < GAIN.mean() < c.ci_high
    assert c.p == pytest.approx(two_level_pvalue(GAIN[None], PHOTOS)[0])
    text = render([t], "text")
    assert "two-level bootstrap over seeds and held-out photos" in text
    assert "no interval" not in text and "one seed per comparison" not in text


def test_table_pairs_seeds_and_images_and_reads_psnr_y(tmp_path):
    shifts = {0: 0.0, 1: 0.4, 2: -0.3}

    def shift(variant, seed):
        return shifts[seed] + (0.05 * seed if variant == "B" else 0.0)

    root = make_study(tmp_path, "three", (Variant("A", "Alpha"), Variant("B", "Beta")),
                      seeds=(0, 1, 2), resolutions=(32, 64), values=_values(shift),
                      images=_images(shift), history=False, artifacts=False)
    (s,) = load_results(root)
    d = np.stack([GAIN + 0.05 * sd for sd in (0, 1, 2)])  # seed offsets cancel in the pairs
    for metric in ("psnr", "psnr_y"):
        t = build_table(s, metric)
        c = next(r for r in t.rows if r.name == "B").deltas[64]
        assert c.delta == pytest.approx(d.mean()) and (c.n, c.n_images) == (3, 7)
        assert (c.ci_low, c.ci_high) == pytest.approx(two_level_bootstrap_ci(d, PHOTOS))
    r = runner.invoke(app, ["table", str(root), "--metric", "psnr_y", "--format", "markdown"])
    assert r.exit_code == 0, r.output
    assert "Y-PSNR@64" in r.output and "| Bicubic | input |  | 25.50 |" in r.output


def test_results_without_per_image_files_fall_back_to_seeds(tmp_path):
    def shift(variant, seed):
        return 0.1 * seed

    root = make_study(tmp_path, "old", (Variant("A", "Alpha"), Variant("B", "Beta")),
                      seeds=(0, 1, 2), resolutions=(64,), values=_values(shift),
                      images=_images(shift), history=False, artifacts=False)
    (root / "images" / next((root / "images").iterdir()).name).unlink()  # one trial lacks it
    (s,) = load_results(root)
    t = build_table(s, "psnr")
    c = next(r for r in t.rows if r.name == "B").deltas[64]
    assert c.n_images == 0 and c.n == 3
    assert any("over seeds only" in n for n in t.notes)
    assert "paired by seed, [95% bootstrap CI over seeds]" in render([t], "text")
