"""Intervals over held-out images for the band ratios behind a verdict (`ablate table --detail`).

The band metrics (`ablate.metrics.spectrum`) are ratios of sums pooled over the held-out crops,
so their uncertainty is not a mean's: each crop's seven in-band sums are kept in the trial's
images/ file (`band_energy`, …, `band_cross_bicubic`), and here every ratio is recomputed on
resamples of the crops. As for the table's Δ intervals (`stats.py`), the unit is the held-out
*photo* (crops of one photo share content): a resample draws the photos with replacement, the
same draw for every seed, pools each seed's crops of the drawn photos into its ratios, and
averages the ratios over the seeds (the row's figure is that mean at the full sample). The
interval is the 95 % percentile interval over BOOTSTRAP_RESAMPLES resamples from a fixed seed,
so the same files always print the same interval. Seeds are not resampled: this says how much
the figure would move on other photos, not on other trainings (the ± over seeds does that).

Results written before the sums were kept have no interval ("—").
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ablate.metrics.band import SUM_KEYS, pool

RATIOS = ("hf_energy_ratio", "band_error_ratio", "band_coherence", "truth_energy_ratio")
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


def ratio_intervals(per_seed: list[dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """RATIOS → (low, high) from per-seed image sums: each a dict with "photo" (n,) and the
    SUM_KEYS arrays (n,), the crops of one trial at one resolution."""
    if not per_seed:
        return {}
    photos = sorted({str(p) for d in per_seed for p in d["photo"]})
    index = {p: k for k, p in enumerate(photos)}
    if len(photos) < 2:  # one photo (or unnamed crops): resample crops as if independent
        n = min(len(d["photo"]) for d in per_seed)
        groups = [np.arange(len(d["photo"])) for d in per_seed]
        n_groups = n
    else:
        groups = [np.array([index[str(p)] for p in d["photo"]]) for d in per_seed]
        n_groups = len(photos)
    # per seed, per group: the sums of its crops → (seeds, groups, keys)
    table = np.zeros((len(per_seed), n_groups, len(SUM_KEYS)))
    for s, (d, g) in enumerate(zip(per_seed, groups)):
        ok = g < n_groups
        for k, key in enumerate(SUM_KEYS):
            table[s, :, k] = np.bincount(g[ok], weights=np.asarray(d[key])[ok],
                                         minlength=n_groups)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, n_groups, size=(BOOTSTRAP_RESAMPLES, n_groups))
    counts = np.stack([np.bincount(row, minlength=n_groups) for row in draws])  # (R, G)
    sums = np.einsum("rg,sgk->rsk", counts, table)  # (R, seeds, keys)
    values = defaultdict(list)
    for rs in sums:
        per = [pool(dict(zip(SUM_KEYS, seed_sums))) for seed_sums in rs]
        for name in RATIOS:
            values[name].append(np.nanmean([p[name] for p in per]))
    lo, hi = (1 - CONFIDENCE) / 2, 1 - (1 - CONFIDENCE) / 2
    out = {}
    for name in RATIOS:
        v = np.asarray(values[name], dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size:
            out[name] = (float(np.quantile(v, lo)), float(np.quantile(v, hi)))
    return out


def study_intervals(s, trials) -> dict[tuple, dict[str, tuple[float, float]]]:
    """(grid, variant, resolution) → RATIOS → interval, for completed `trials` (objects with
    id, grid, variant, seed) of StudyResults `s`; keys without per-image sums are absent."""
    got = s.image_columns([t.id for t in trials], SUM_KEYS)
    per_key: dict[tuple, list[dict]] = defaultdict(list)
    for t in trials:
        a = got.get(t.id)
        if a is None:
            continue
        for r in np.unique(a["resolution"][np.isfinite(a["resolution"])]):
            m = (a["resolution"] == r) & np.isfinite(a["band_energy"])
            if not m.any():
                continue
            per_key[(t.grid, t.variant, int(r))].append(
                {"photo": a["photo"][m], **{k: a[k][m] for k in SUM_KEYS}})
    return {key: ratio_intervals(v) for key, v in per_key.items()}
