"""Stable trial ids, and the trial config as plain data (JSON) and back.

A trial's id is the first 12 hex digits of the SHA-256 of its resolved configuration as
canonical JSON (sorted keys, no whitespace, floats as Python's shortest round-trip repr): the
`data`, `model` and `train` sections with every default filled, plus the seed. Key order and
formatting of the study file do not matter; any change of a resolved value does. Left out,
because they do not change the numbers a trial produces: the study and variant names, the
label, `[resources]`, `model.mamba_backend` (the fused and torch scans compute the same
function) and `model.query_chunk` (evaluation memory only).

The model keys are those of its kind: a LIIF trial's id hashes `model.kind` and `model.liif`
only (`KIND_KEYS`; the seed model's sizes do not change what LIIF computes), the seed model's
every key but `model.liif`, which is None for it (`ModelConfig.resolved`): a field that is
None is left out, so adding an optional one changes no id. Keys renamed since trials were
first hashed are hashed under their former name (`RENAMED`): `model.kind` was `model.decoder`
(always "lainr") before LIIF became a model kind (issue 23), so every earlier trial keeps its
id. A config written before a rename is read back with the new name (`trial_from_dict`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from ablate.spec import config as C
from ablate.spec.convert import Problems, convert

NOT_IN_ID = {"model": ("mamba_backend", "query_chunk")}
KIND_KEYS = {"liif": ("kind", "liif")}  # model.kind → the only model keys its id hashes
RENAMED = {"model": {"kind": "decoder"}}  # section → {key: the name the id hashes it under}


def _plain(obj):
    """Dataclasses as dicts; a field that is None (an optional key not given, such as a
    curriculum stage's from_fraction once resolved) is left out, so adding one changes no id."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if getattr(obj, f.name) is not None}
    if isinstance(obj, (list, tuple)):
        return [_plain(x) for x in obj]
    return obj


def identity(data: C.DataConfig, model: C.ModelConfig, train: C.TrainConfig, seed: int) -> dict:
    """The part of a trial's config that its id hashes."""
    out = {"data": _plain(data), "model": _plain(model), "train": _plain(train), "seed": seed}
    for section, keys in NOT_IN_ID.items():
        for key in keys:
            out[section].pop(key, None)
    if model.kind in KIND_KEYS:
        out["model"] = {k: v for k, v in out["model"].items() if k in KIND_KEYS[model.kind]}
    for section, names in RENAMED.items():
        for key, former in names.items():
            if key in out[section]:
                out[section][former] = out[section].pop(key)
    return out


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def make_trial_id(data, model, train, seed) -> str:
    digest = hashlib.sha256(canonical_json(identity(data, model, train, seed)).encode())
    return digest.hexdigest()[:12]


def trial_to_dict(t: C.TrialConfig) -> dict:
    """The whole trial config as JSON-ready data (plan --json, config_json, Ray's config)."""
    return {
        "trial_id": t.trial_id,
        "study": t.study,
        "variant": t.variant,
        "label": t.label,
        "seed": t.seed,
        "grid": {k: _plain(v) for k, v in t.grid},
        "data": _plain(t.data),
        "model": _plain(t.model),
        "train": _plain(t.train),
        "variant_order": t.variant_order,
        "spec_dir": t.spec_dir,
        "search": t.search,
    }


def trial_from_dict(d: dict) -> C.TrialConfig:
    """Inverse of `trial_to_dict` (validates again; raises ValueError on a bad dict)."""
    problems = Problems()
    data = convert(C.DataConfig, d["data"], "data", problems)
    model = convert(C.ModelConfig, renamed(d["model"], "model"), "model", problems)
    model = model.resolved() if model is not None else model
    train = convert(C.TrainConfig, d["train"], "train", problems)
    if problems:
        raise ValueError("; ".join(p.render("trial config") for p in problems))
    t = C.TrialConfig(
        study=d["study"], variant=d["variant"], label=d["label"], seed=int(d["seed"]),
        data=data, model=model, train=train,
        grid=tuple((k, freeze(v)) for k, v in d.get("grid", {}).items()),
        variant_order=int(d.get("variant_order", 0)), spec_dir=d.get("spec_dir", ""),
        search=str(d.get("search", "")),
    )
    return dataclasses.replace(t, trial_id=make_trial_id(data, model, train, t.seed))


def model_kind(config_json: str) -> str:
    """`model.kind` of a trial's `config_json` ("lainr" where the config predates the key or
    does not say; "" where it is not JSON)."""
    try:
        config = json.loads(config_json) if config_json else {}
    except ValueError:
        return ""
    model = config.get("model") if isinstance(config, dict) else None
    model = renamed(model, "model") if isinstance(model, dict) else {}
    return str(model.get("kind", C.ModelConfig.kind))


def renamed(section: dict, name: str) -> dict:
    """A section of a config written before a rename (`RENAMED`), with its keys' new names."""
    former = {old: new for new, old in RENAMED.get(name, {}).items()}
    return {former.get(k, k): v for k, v in section.items()}


def freeze(v):
    """Lists (from TOML or JSON) → tuples, recursively, as the frozen configs hold them."""
    if isinstance(v, list):
        return tuple(freeze(x) for x in v)
    return v
