"""A trial's settings as dotted keys, and what differs between the rows of a study: what
`ablate plan` shows per trial and the report states per variant ("Original (bug)" means its
settings), what `ablate run` compares against finished trials (orchestrate/changes.py).

    flat = settings(trial_to_dict(cfg))        # {"train.jitter.placement": "per_epoch", …}
    common, differing = split({"a": flat_a, "b": flat_b})
    # common: {key: value} equal in every row; differing: {row: {key: value}} the rest

Keys that name or place a trial rather than configure it (trial id, study, variant, label,
row order, spec folder, search, seed, grid) are left out, as is `model.mamba_backend` (not
part of the id: how the scan runs, not what it computes) and `model.query_chunk` (memory only),
and so are settings that the trial does not use: a jitter's std and distribution without
jitter (its std with the uniform one), a multi-scale set when multi-scale is off, its
`samples` outside hr_sample. A curriculum is one setting, `train.curriculum`, written as
`CurriculumConfig.describe` writes it ("1:16 2:16,24": stages by first epoch; "none").
"""

from __future__ import annotations

import json

NOT_SETTINGS = {"trial_id", "study", "variant", "label", "variant_order", "spec_dir", "search",
                "seed", "grid", "model.mamba_backend", "model.query_chunk"}


def settings(config: dict, prefix: str = "") -> dict[str, object]:
    """A trial config as `trial_to_dict` (or a `config_json`) gives it → {dotted key: value},
    nested tables flattened (lists kept whole), keys that are not settings left out."""
    out: dict[str, object] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if dotted in NOT_SETTINGS:
            continue
        if isinstance(value, dict) and value:
            out.update(settings(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out if prefix else _used(out)


def _used(flat: dict[str, object]) -> dict[str, object]:
    drop = set()
    if flat.get("train.jitter.placement") == "none":
        drop |= {"train.jitter.dist", "train.jitter.std"}
    elif flat.get("train.jitter.dist") == "uniform":
        drop.add("train.jitter.std")
    mode = flat.get("train.multiscale.mode")
    if mode == "off":
        drop |= {"train.multiscale.resolutions", "train.multiscale.samples"}
    elif mode is not None and mode != "hr_sample":
        drop.add("train.multiscale.samples")
    out = {k: v for k, v in flat.items() if k not in drop}
    stages = out.pop("train.curriculum.stages", None)
    if isinstance(stages, list):  # as `CurriculumConfig.describe` writes it: "1:16 2:16,24"
        out["train.curriculum"] = " ".join(
            f"{s.get('from_epoch')}:{','.join(str(r) for r in s.get('resolutions', ()))}"
            for s in stages if isinstance(s, dict)) or "none"
    return out


def show(value) -> str:
    """A setting as a spec would write it: strings bare, numbers with %g, lists in brackets."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if value is None:
        return "none"
    return json.dumps(value, default=str)


def split(rows: dict[str, dict[str, object]]) -> tuple[dict[str, object],
                                                     dict[str, dict[str, object]]]:
    """(settings with one value in every row that has them, {row: its settings that take
    different values in different rows}). A setting only some rows have (LIIF's options, a
    jitter's std) is common when those rows agree on it: a row lists only what it has."""
    keys = sorted({k for flat in rows.values() for k in flat})
    common: dict[str, object] = {}
    differing: dict[str, dict[str, object]] = {name: {} for name in rows}
    for k in keys:
        having = {name: flat[k] for name, flat in rows.items() if k in flat}
        if len({json.dumps(v, sort_keys=True, default=str) for v in having.values()}) == 1:
            common[k] = next(iter(having.values()))
        else:
            for name, v in having.items():
                differing[name][k] = v
    return common, differing
