"""The statistics behind the table: seeds summarised, variants compared to the baseline.

- **Summary**: mean and sample standard deviation (ddof = 1) over seeds; no std from one seed.
- **Paired comparison**: a variant and the baseline trained with the same seed share the data
  order and the initialisation seed, and every trial is evaluated on the same held-out crops,
  so the unit of comparison is the paired difference d[s, i] = variant[s, i] − baseline[s, i]
  of seed s on held-out image i (per-image metrics, ``images/<trial_id>.parquet``). Δ is the
  mean of d over the seeds both have and the images both have (= the difference of the
  trial-level means).
- **Two sources of variation**: a different seed would train a different model, and a
  different draw of held-out photos would test it on other content. The held-out crops come
  from a few photos (7 for bundled), and crops of one photo share its content, so the
  image-level unit is the *photo*: its crops are resampled together (a cluster bootstrap);
  sources where every image is its own photo (CIFAR-10, folder test/ images) resample images.
- **Interval (two-level paired bootstrap)**: 95 % percentile interval of Δ over B = 10,000
  resamples, each (1) drawing the n seeds with replacement and (2) drawing the G photos with
  replacement, the same photo draw for every seed of the resample — seeds and images are
  *crossed* (every seed is evaluated on the same crops), so a photo's difficulty is shared by
  all seeds and resampling photos independently per seed would average it away and understate
  the interval by ≈ √n. The resample's Δ is the mean of d over the drawn seeds × the crops of
  the drawn photos, paired by image id between variant and baseline. Draws come from fixed
  seeds (``BOOTSTRAP_SEED`` for seeds, ``BOOTSTRAP_SEED + 1`` for photos), so the same numbers
  always give the same interval. With one seed the interval is over photos only; with one
  photo, over its crops (as if independent: the table says so). With few seeds or photos (2,
  3) a percentile interval is narrow by construction — read it with the p-value beside it.
  Results without per-image files (written before ablate kept them) fall back to the seed
  bootstrap of the per-seed differences, and the table says so: ``bootstrap_ci``.
- **Test**: two-sided t-test of Δ = 0 whose variance has both components,
  SE² = v_seed + v_photo with v_seed = var(d̄_s, ddof 1) / n over the per-seed mean
  differences and v_photo = G/(G − 1) · Σ_g (N_g/N)² (d̄_g − Δ)² over the per-photo mean
  differences (N_g crops of photo g; = var(d̄_g, ddof 1)/G for equal N_g), with
  Welch–Satterthwaite degrees of freedom; a component is left out when its count is 1. (Each
  component also holds the seed × image noise once, so SE is slightly conservative.) Without
  per-image results it is the paired t-test over seeds, ``scipy.stats.ttest_rel(variant,
  baseline)``: t = mean(d) / (std(d, ddof=1) / √n), p = 2·F_t(−|t|; n − 1) = I_{ν/(ν+t²)}(ν/2, ½).
  It is computed here, with the incomplete beta function's continued fraction, because
  importing scipy costs a quarter of the table's 2 s budget (``scipy.stats`` 0.5 s,
  ``scipy.special`` 0.15 s); tests check it equals ``ttest_rel`` to 1e-9 relative.
  Conventions where ttest_rel returns NaN or ±inf:
  all differences equal and non-zero → p = 0 (as ttest_rel); all zero → p = 1 (no evidence
  of a difference; ttest_rel says NaN); n < 2 (and one photo) → no test.
- **Multiple comparisons**: Holm's step-down correction across all the comparisons of a table
  (every variant × grid point × resolution that has a p-value): sort the m p-values,
  p_(i) ↦ max_{j ≤ i} min(1, (m − j + 1) · p_(j)).
- **Marks** on the Holm-adjusted p: * < 0.05, ** < 0.01, *** < 0.001.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
MARKS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))  # on the Holm-adjusted p-value


@dataclass
class Summary:
    """A row's figure at one resolution: mean ± std over n seeds."""

    mean: float | None  # None: no value
    std: float | None  # None when n < 2
    n: int


@dataclass
class Comparison:
    """A variant vs the baseline at one resolution, paired by seed."""

    delta: float | None  # mean of the paired differences; None without a pair
    ci_low: float | None  # 95 % bootstrap interval of delta; None when n < 2
    ci_high: float | None
    n: int  # paired seeds
    p: float | None  # t-test, two-sided (see the module); None when nothing varies
    p_holm: float | None = None  # Holm-adjusted across the table (set by `holm`)
    n_images: int = 0  # paired held-out images (0: seed-level values only)
    n_photos: int = 0  # photos (image clusters) resampled; 0 without per-image values

    @property
    def mark(self) -> str:
        return significance_mark(self.p_holm)


def summarize(values) -> Summary:
    """Mean and std (ddof = 1) of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return Summary(None, None, 0)
    return Summary(float(v.mean()), float(v.std(ddof=1)) if n > 1 else None, n)


@lru_cache(maxsize=64)
def bootstrap_indices(n: int, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(resamples, n) indices into n paired seeds, drawn from a fixed seed."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


@lru_cache(maxsize=64)
def _bootstrap_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n): how often each seed is drawn in each resample, divided by n, so that
    weights @ d are the resample means (a matrix product: ~10× faster than gathering)."""
    idx = bootstrap_indices(n, resamples, seed)
    flat = (idx + n * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n) / n


def bootstrap_ci(
    d, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mean(d); None when fewer than 2 values.

    The resample means are those of ``d[bootstrap_indices(n)]`` row by row."""
    d = np.asarray(d, dtype=float)
    if d.size < 2:
        return None
    means = _bootstrap_weights(d.size, resamples, seed) @ d
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def paired_t_pvalue(d) -> float | None:
    """Two-sided p of the paired t-test on differences d (= ttest_rel); None when n < 2."""
    d = np.asarray(d, dtype=float)
    n = d.size
    if n < 2:
        return None
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return 1.0 if mean == 0.0 else 0.0
    t = mean / (sd / math.sqrt(n))
    return t_two_sided(t, n - 1)


def t_two_sided(t: float, df: int) -> float:
    """P(|T| ≥ |t|) for Student's t with df degrees of freedom: I_x(df/2, 1/2), x = df/(df+t²)
    (= scipy.special.stdtr-based p of ttest_rel, without importing scipy; tests compare)."""
    t2 = t * t
    x, one_minus_x = df / (df + t2), t2 / (df + t2)
    return min(1.0, _betainc(df / 2.0, 0.5, x, one_minus_x))


def _betainc(a: float, b: float, x: float, one_minus_x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by its continued fraction (Numerical Recipes
    §6.4, modified Lentz), on the side of the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where it
    converges fast; `one_minus_x` is passed exactly to keep the relative precision of tails."""
    if x <= 0.0:
        return 0.0
    if one_minus_x <= 0.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log(one_minus_x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, one_minus_x) / b


def _betacf(a: float, b: float, x: float, eps: float = 1e-16, tiny: float = 1e-300) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def compare_paired(variant, baseline) -> Comparison:
    """Compare two seed-aligned vectors (NaN = missing); only seeds both have are paired."""
    a = np.asarray(variant, dtype=float)
    b = np.asarray(baseline, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if d.size == 0:
        return Comparison(None, None, None, 0, None)
    ci = bootstrap_ci(d)
    return Comparison(
        delta=float(d.mean()),
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
        n=int(d.size),
        p=paired_t_pvalue(d),
    )


def holm(pvalues) -> list[float | None]:
    """Holm step-down adjusted p-values; None entries stay None and do not count in m."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def apply_holm(comparisons: list[Comparison]) -> None:
    """Set p_holm on every comparison, corrected across all of them."""
    for c, q in zip(comparisons, holm([c.p for c in comparisons])):
        c.p_holm = q


def significance_mark(p_holm: float | None) -> str:
    if p_holm is None:
        return ""
    for threshold, mark in MARKS:
        if p_holm < threshold:
            return mark
    return ""


# ---------------------------------------------------------------------------------------------
# Two levels: seeds × held-out images (photos)
# ---------------------------------------------------------------------------------------------

_CHUNK = 1000  # bootstrap resamples per block (bounds memory for large held-out sets)


def _count_weights(idx: np.ndarray, n: int) -> np.ndarray:
    """(b, n) indices → (b, n) draw counts."""
    b = idx.shape[0]
    flat = (idx + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(float)


def two_level_bootstrap_ci(
    d, groups, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """Percentile interval of mean(d) for d (n_seeds, n_images), images clustered by
    `groups` (n_images labels): each resample draws seeds and, shared by all of them, groups
    with replacement (module docstring). None when there is one seed and one group."""
    d = np.asarray(d, dtype=float)
    labels, gi = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n_s, n_g = d.shape[0], labels.size
    if n_s < 2 and n_g < 2:
        return None
    sums = np.zeros((n_s, n_g))
    np.add.at(sums.T, gi, d.T)  # (seeds, groups): Σ of d over each group's crops
    sizes = np.bincount(gi, minlength=n_g).astype(float)
    seed_w = (_bootstrap_weights(n_s, resamples, seed) if n_s > 1
              else np.ones((resamples, 1)))  # rows sum to 1
    rng = np.random.default_rng(seed + 1)
    stats = np.empty(resamples)
    for lo in range(0, resamples, _CHUNK):
        hi = min(resamples, lo + _CHUNK)
        gw = (_count_weights(rng.integers(0, n_g, size=(hi - lo, n_g)), n_g) if n_g > 1
              else np.ones((hi - lo, 1)))
        stats[lo:hi] = ((seed_w[lo:hi] @ sums) * gw).sum(1) / (gw @ sizes)
    alpha = (1 - confidence) / 2
    q_lo, q_hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(q_lo), float(q_hi)


def two_level_pvalue(d, groups) -> tuple[float | None, float, float]:
    """(p, v_seed, v_photo): the two-sided t-test of mean(d) = 0 with both variance
    components and Welch–Satterthwaite df (module docstring); p None when neither component
    can be estimated (one seed and one group)."""
    d = np.asarray(d, dtype=float)
    labels, gi = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n_s, n_g = d.shape[0], labels.size
    mean = float(d.mean())
    v_seed = float(d.mean(1).var(ddof=1)) / n_s if n_s > 1 else 0.0
    v_photo = 0.0
    if n_g > 1:
        sizes = np.bincount(gi, minlength=n_g).astype(float)
        g_mean = np.bincount(gi, weights=d.sum(0), minlength=n_g) / (sizes * n_s)
        share = sizes / sizes.sum()
        v_photo = n_g / (n_g - 1) * float(np.sum(share**2 * (g_mean - mean) ** 2))
    if n_s < 2 and n_g < 2:
        return None, v_seed, v_photo
    var = v_seed + v_photo
    if var == 0.0 or not math.isfinite(var):
        return (1.0 if mean == 0.0 else 0.0), v_seed, v_photo
    parts = [(v_seed, n_s - 1), (v_photo, n_g - 1)]
    df = var**2 / sum(v**2 / k for v, k in parts if k > 0 and v > 0)
    return t_two_sided(mean / math.sqrt(var), df), v_seed, v_photo


def compare_images(d, groups) -> Comparison:
    """Variant vs baseline from paired per-image differences d (n_seeds, n_images), complete
    (seeds and images both have), images clustered by `groups`."""
    d = np.asarray(d, dtype=float)
    if d.size == 0:
        return Comparison(None, None, None, 0, None)
    ci = two_level_bootstrap_ci(d, groups)
    p, _, _ = two_level_pvalue(d, groups)
    return Comparison(
        delta=float(d.mean()), ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None,
        n=int(d.shape[0]), p=p, n_images=int(d.shape[1]),
        n_photos=int(np.unique(np.asarray(groups, dtype=object).astype(str)).size),
    )
