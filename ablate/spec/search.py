"""The `[search]` table of a study: what `ablate search` optimises, over which keys, how.

    [search]
    metric = "band_error_ratio"      # a numeric metric column of the trial rows
    resolution = 64                  # the eval resolution it is read at
    mode = "min"                     # or "max"
    num_samples = 40                 # sampled configurations (finished ones count on resume)
    [search.space]                   # dotted keys of data/model/train, as in --set
    "model.sigmas" = { choice = [[128, 32], [64, 16]] }
    "train.jitter.std" = { loguniform = [0.001, 0.05] }

A sampled point is applied to the starting variant (`variant`, default the baseline) exactly
like a `--set` on it, so a sampled trial is a normal trial: same validation, same cross-field
rules, id = hash of its resolved config (`sampled_trial`). Every problem is collected with its
key path (`search.space."train.lr".loguniform`), like the rest of the spec.

Domains: `choice = [v, …]`, `uniform = [lo, hi]`, `loguniform = [lo, hi]` (lo > 0), and
`int = [lo, hi]` (inclusive) for integer keys. Values are checked as values of their key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_origin

from ablate.spec import config as C
from ablate.spec.config import SECTIONS, TRIAL_SECTIONS
from ablate.spec.convert import Problems, convert, convert_value, describe, hints, join, suggest
from ablate.spec.expand import check, make_trial, resolve, resolve_data
from ablate.spec.ids import freeze, make_trial_id

DOMAIN_KINDS = ("choice", "uniform", "loguniform", "int")
SPACE_PATH = "search.space"


@dataclass(frozen=True)
class Domain:
    """Where one key is sampled from."""

    kind: Literal["choice", "uniform", "loguniform", "int"]
    values: tuple  # choice: the values (lists frozen to tuples); else (low, high)

    def labels(self) -> tuple[str, ...]:
        """Choice values as the names Optuna sees (it takes scalars only)."""
        return tuple(C.format_value(v) for v in self.values)


@dataclass(frozen=True)
class SearchSettings:
    """The scalar keys of [search] (the space is read apart)."""

    name: str = "search"  # names the search: its trials' `search` column, its folder
    variant: str = ""  # the starting variant the sampled keys are applied to ("" = baseline)
    metric: str = "band_error_ratio"  # a numeric metric column of the trial rows
    resolution: int = dataclasses.field(default=0, metadata={"min": 0})  # eval
    #   resolution the metric is read at (0 = the highest of data.eval_resolutions)
    mode: Literal["min", "max"] = "min"
    num_samples: int = dataclasses.field(default=20, metadata={"min": 1})  # configurations
    max_concurrent: int = dataclasses.field(default=0, metadata={"min": 0})  # 0: as resources
    #   allow (resources.max_concurrent when set)
    algorithm: Literal["tpe", "random"] = "tpe"  # Optuna's TPE (via Ray Tune's OptunaSearch)
    scheduler: Literal["asha", "none"] = "none"  # asha: stop poor trials early on the
    #   per-epoch quick_psnr (recorded as status = stopped)
    grace_period: int = dataclasses.field(default=1, metadata={"min": 1})  # asha: epochs
    #   every trial runs before it may be stopped
    reduction_factor: float = dataclasses.field(default=3.0, metadata={"gt": 1.0})  # asha
    seed: int = dataclasses.field(default=0, metadata={"min": 0})  # the sampler's seed


@dataclass(frozen=True)
class SearchConfig:
    settings: SearchSettings
    space: tuple[tuple[str, Domain], ...]  # dotted key → domain, in file order
    variant: str  # the starting variant, resolved
    resolution: int  # resolved
    seed: int  # training seed of the sampled trials: the study's first seed

    def __getattr__(self, item):  # settings' fields read through
        if item in {f.name for f in dataclasses.fields(SearchSettings)}:
            return getattr(self.settings, item)
        raise AttributeError(item)

    def __getstate__(self):  # __getattr__ above must not see a half-built object on unpickle
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


# ---------------------------------------------------------------------------------------------
# setting a dotted key on the resolved sections
# ---------------------------------------------------------------------------------------------


def _target(dotted: str):
    """(section, [field, …], leaf type, leaf metadata) of a dotted key, or an error message."""
    parts = dotted.split(".")
    if len(parts) < 2 or parts[0] not in TRIAL_SECTIONS:
        return f"expected a dotted key of {', '.join(TRIAL_SECTIONS)}, e.g. train.lr or " \
               "model.sigmas"
    cls = SECTIONS[parts[0]]
    tp, meta = cls, {}
    for i, name in enumerate(parts[1:], start=1):
        if not dataclasses.is_dataclass(tp):
            return f"{'.'.join(parts[:i])} is not a table"
        fields = {f.name: f for f in dataclasses.fields(tp)}
        if name not in fields:
            return f"unknown key {name!r} of {'.'.join(parts[:i])}" + suggest(name, fields)
        tp, meta = hints(tp)[name], fields[name].metadata
    if dataclasses.is_dataclass(tp):
        return f"{dotted} is a table: search one of its keys, e.g. {dotted}." \
               f"{dataclasses.fields(tp)[-1].name}"
    return parts[0], parts[1:], tp, meta


def set_key(sections: dict, dotted: str, raw, problems: Problems, path: str) -> None:
    """sections[section] with the key at `dotted` replaced by the (validated) raw value."""
    section, names, tp, meta = _target(dotted)

    def put(obj, names):
        if len(names) == 1:
            value = convert_value(tp, raw, path, problems, meta, getattr(obj, names[0]))
            return dataclasses.replace(obj, **{names[0]: value})
        return dataclasses.replace(obj, **{names[0]: put(getattr(obj, names[0]), names[1:])})

    sections[section] = put(sections[section], names)


def _is_number(tp) -> bool:
    return tp in (int, float)


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


def parse_search(raw, study: C.Study, problems: Problems) -> SearchConfig | None:
    """The [search] table of a built study (None when there is none); problems collected."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add("search", f"expected a table, got {describe(raw)}")
        return None
    scalars = {k: v for k, v in raw.items() if k != "space"}
    settings = convert(SearchSettings, scalars, "search", problems) or SearchSettings()
    names = [v.name for v in study.variants]
    variant = settings.variant or study.baseline
    if variant not in names:
        problems.add("search.variant", f"names no variant: {variant!r}"
                     + suggest(variant, names) + f"; variants: {', '.join(names)}")
        return None
    start = study.variants[names.index(variant)]
    # the metric must be a column of the result contract (ablate/schema.py, below spec);
    # imported here for start-up time: it imports pyarrow (~0.26 s), which parsing never needs
    from ablate.schema import TRIAL_COLUMNS

    metrics = [c.name for c in TRIAL_COLUMNS.columns if c.role == "metric" and c.is_number
               and c.name != "resolution"]
    if settings.metric not in metrics:
        what = "is not a numeric metric column" if settings.metric in TRIAL_COLUMNS \
            else "is not a column of the trial rows"
        problems.add("search.metric", f"{settings.metric!r} {what}"
                     + suggest(settings.metric, metrics) + "; expected one of: "
                     + ", ".join(metrics))

    data, model, train = resolve(study, start, ())
    resolution = settings.resolution or max(data.eval_resolutions)
    if resolution not in data.eval_resolutions:
        problems.add("search.resolution", f"{resolution} is not an eval resolution of variant "
                     f"{variant!r}: expected one of {list(data.eval_resolutions)}")
    space = _space(raw.get("space"), problems)
    cfg = SearchConfig(settings, space, variant, resolution, study.study.seeds[0])
    # every bound and choice, applied alone to the starting variant: valid, and effective
    for key, domain in space:
        path = join(SPACE_PATH, f'"{key}"')
        ends = domain.values
        ids = set()
        for i, value in enumerate(ends):
            where = f"{path}.{domain.kind}[{i + 1}]"
            sub = Problems()
            sections = {"data": data, "model": model, "train": train}
            set_key(sections, key, _raw(value), sub, where)
            for p in sub:
                problems.add(p.key, p.message)
            if sub:
                continue
            rules = Problems()  # cross-field rules, reported where the value was written
            check(study, sections["data"], sections["model"], sections["train"], "search",
                  rules)
            for p in rules:
                problems.add(where, f"{p.key}: {p.message.replace(' (in search)', '')}")
            ids.add(make_trial_id(sections["data"], sections["model"].resolved(),
                                  sections["train"], 0))
        inert = _inert(key, train)
        if inert:
            problems.add(path, f"changes nothing in the trials of the starting variant "
                         f"{variant!r}: {inert}; start from another variant (search.variant)")
        elif len(ids) == 1 and len(ends) > 1:
            problems.add(path, f"changes nothing in the trials of the starting variant "
                         f"{variant!r} (e.g. train.jitter.std while its jitter is \"none\"): "
                         "search another key, or start from another variant "
                         "(search.variant)")
    return cfg


def _inert(key: str, train: C.TrainConfig) -> str:
    """Why `key` is unused by the starting variant's training ("" when it is used)."""
    if key.startswith("train.jitter.") and key != "train.jitter.placement" \
            and train.jitter.placement == "none":
        return 'its jitter placement is "none"'
    if key == "train.jitter.std" and train.jitter.dist == "uniform":
        return "its jitter is uniform (std is for gaussian jitter)"
    if key.startswith("train.multiscale.") and key != "train.multiscale.mode" \
            and train.multiscale.mode == "off":
        return 'its multiscale mode is "off"'
    return ""


def _raw(value):
    """A frozen value back to what TOML would give (tuples → lists)."""
    if isinstance(value, tuple):
        return [_raw(v) for v in value]
    return value


def _space(raw, problems: Problems) -> tuple[tuple[str, Domain], ...]:
    if raw is None or (isinstance(raw, dict) and not raw):
        problems.add(SPACE_PATH, 'empty: give at least one dotted key to search, e.g. '
                     '"train.lr" = { loguniform = [1e-4, 2e-3] }')
        return ()
    if not isinstance(raw, dict):
        problems.add(SPACE_PATH, f"expected a table of dotted keys, got {describe(raw)}")
        return ()
    out = []
    for key, spec in raw.items():
        path = join(SPACE_PATH, f'"{key}"')
        target = _target(key)
        if isinstance(target, str):
            problems.add(path, target)
            continue
        _, _, tp, _ = target
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DOMAIN_KINDS:
            problems.add(path, "expected one of { choice = [...] }, { uniform = [lo, hi] }, "
                         "{ loguniform = [lo, hi] }, { int = [lo, hi] }, got "
                         + (f"keys {sorted(spec)}" if isinstance(spec, dict) else describe(spec)))
            continue
        kind, values = next(iter(spec.items()))
        dpath = join(path, kind)
        if not isinstance(values, list) or not values:
            problems.add(dpath, f"expected a non-empty array, got {describe(values)}")
            continue
        if kind == "choice":
            frozen = tuple(freeze(v) for v in values)
            if len({repr(v) for v in frozen}) != len(frozen):
                problems.add(dpath, "values repeat")
                continue
            out.append((key, Domain("choice", frozen)))
            continue
        if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in values):
            problems.add(dpath, f"expected two numbers [low, high], got {values!r}")
            continue
        low, high = values
        if not _is_number(tp) or get_origin(tp) is not None:
            problems.add(dpath, f"{key} is not a number: search it with {{ choice = [...] }}")
            continue
        if kind == "int" and (tp is not int or not all(isinstance(v, int) for v in values)):
            problems.add(dpath, f"int = [lo, hi] takes two integers of an integer key; {key} "
                         f"is {'a number: use uniform or loguniform' if tp is float else tp}")
            continue
        if kind != "int" and tp is int:
            problems.add(dpath, f"{key} is an integer: use int = [lo, hi] or choice")
            continue
        if not low < high:
            problems.add(dpath, f"expected low < high, got [{low}, {high}]")
            continue
        if kind == "loguniform" and low <= 0:
            problems.add(dpath, f"loguniform needs low > 0, got {low}")
            continue
        out.append((key, Domain(kind, (low, high))))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# a sampled point → a trial
# ---------------------------------------------------------------------------------------------


def decode(search: SearchConfig, params: dict) -> tuple[tuple[str, object], ...]:
    """Optuna's parameters (choice labels, numbers) → (dotted key, value) pairs, space order."""
    out = []
    for key, domain in search.space:
        v = params[key]
        if domain.kind == "choice":
            v = domain.values[domain.labels().index(v)] if isinstance(v, str) and \
                v in domain.labels() else v
        elif domain.kind == "int":
            v = int(v)
        else:
            v = float(v)
        out.append((key, freeze(v)))
    return tuple(out)


def encode(search: SearchConfig, point) -> dict:
    """Inverse of `decode`: what Optuna is told a finished trial's parameters were."""
    out = {}
    for (key, domain), (_, v) in zip(search.space, point):
        out[key] = domain.labels()[list(domain.values).index(v)] if domain.kind == "choice" \
            else v
    return out


def sampled_trial(study: C.Study, search: SearchConfig, point, seed: int | None = None,
                  variant_name: str | None = None, label: str | None = None) -> C.TrialConfig:
    """The trial of a sampled point: the starting variant with the point applied like `--set`,
    its grid key the point itself (so the table can tell it from the grid's rows). Raises
    ValueError when the point gives an invalid trial (not possible for a validated space)."""

    start = next(v for v in study.variants if v.name == search.variant)
    data, model, train = resolve(study, start, ())
    sections = {"data": data, "model": model, "train": train}
    problems = Problems()
    for key, value in point:
        set_key(sections, key, _raw(value), problems, join(SPACE_PATH, f'"{key}"'))
    sections["data"] = resolve_data(sections["data"])
    sections["model"] = sections["model"].resolved()
    seed = search.seed if seed is None else seed
    spec_dir = str(Path(study.path).resolve().parent) if study.path and Path(study.path).exists() \
        else ""
    cfg, _ = make_trial(study, start, (sections["data"], sections["model"], sections["train"]),
                        seed, grid=tuple(point), where="search", problems=problems,
                        spec_dir=spec_dir, label=label, name=variant_name)
    if problems:
        raise ValueError("; ".join(p.render("search point") for p in problems))
    return cfg
