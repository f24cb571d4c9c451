"""The band figures pooled from per-image in-band sums (torch-free: `ablate table` uses it).

`ablate.metrics.spectrum.band_sums` measures, per held-out crop, seven sums over its in-band
bins (SUM_KEYS); every band figure of a trial row is a ratio of their totals (`pool`), so the
figures of any subset or resample of crops (the table's intervals, table/band.py) come from the
same function as the row's own. Definitions: ablate/metrics/spectrum.py's docstring.
"""

from __future__ import annotations

import math

import numpy as np

# the per-image sums `band_sums` returns, in `pool`'s order
SUM_KEYS = ("band_energy", "band_energy_bicubic", "band_energy_truth", "band_error",
            "band_error_bicubic", "band_cross", "band_cross_bicubic")


def pool(sums) -> dict[str, float]:
    """The pooled band metrics (module docstring) of per-image sums: a mapping of SUM_KEYS to
    sequences (any subset or resample of images), summed here. NaN where a denominator is 0."""
    t = {k: float(np.sum(np.asarray(sums[k], dtype=np.float64))) for k in SUM_KEYS}

    def coherence(cross: float, energy: float) -> float:
        if energy == 0.0 and t["band_energy_truth"] > 0.0:
            return 0.0  # an empty band agrees with nothing
        return _div(cross, math.sqrt(energy * t["band_energy_truth"]))

    return {
        "hf_energy_ratio": _div(t["band_energy"], t["band_energy_bicubic"]),
        "band_error_ratio": _div(t["band_error"], t["band_error_bicubic"]),
        "band_coherence": coherence(t["band_cross"], t["band_energy"]),
        "band_coherence_bicubic": coherence(t["band_cross_bicubic"], t["band_energy_bicubic"]),
        "truth_energy_ratio": _div(t["band_energy_truth"], t["band_energy_bicubic"]),
    }


def _div(a: float, b: float) -> float:
    return a / b if b > 0 and math.isfinite(b) else math.nan
