"""Standard JSON for what ablate prints (`table --format json`, `data --json`): NaN and ±inf,
which `json.dumps` would write as the non-standard NaN/Infinity, become null."""

from __future__ import annotations

import math


def json_safe(x):
    """`x` (dicts, lists, scalars) with every non-finite float replaced by None."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_safe(v) for v in x]
    return x
