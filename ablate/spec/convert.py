"""Raw TOML values → typed, frozen dataclasses, collecting every problem with its key path.

`convert(cls, raw, path, problems)` walks the type hints of a dataclass from
``ablate.spec.config``: unknown keys (with a "did you mean"), wrong types and values outside
the bounds declared in each field's metadata become `Problem`s; conversion goes on so that all
problems of a file are reported at once. Shorthands: a string for a jitter placement, a
multi-scale mode or ``curriculum = "none"``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from ablate.spec import config as C


@dataclass(frozen=True)
class Problem:
    key: str  # dotted key path, e.g. "variant[2].jitter.std" ("" = the whole file)
    message: str  # what is wrong and what was expected

    def render(self, file: str) -> str:
        return f"{file}: {self.key}: {self.message}" if self.key else f"{file}: {self.message}"


class Problems(list):
    """A list of Problem that ignores exact repeats (a base value checked once per variant)."""

    def add(self, key: str, message: str) -> None:
        p = Problem(key, message)
        if p not in self:
            self.append(p)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def suggest(key: str, choices) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, (int, float)):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


_HINTS: dict[type, dict[str, Any]] = {}


def hints(cls) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, vars(C))
    return _HINTS[cls]


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


_SHORTHAND = {
    C.JitterConfig: "placement",
    C.MultiscaleConfig: "mode",
}


def convert(cls, raw: Any, path: str, problems: Problems, base=None):
    """Build `cls` from `raw` (a dict), filling missing keys from `base` or the defaults."""
    if cls in _SHORTHAND and isinstance(raw, str):
        raw = {_SHORTHAND[cls]: raw}
    if cls is C.CurriculumConfig:
        if isinstance(raw, str):
            if raw != "none":
                problems.add(path, f'expected "none" or a table {{stages = [...]}}, got {raw!r}')
            return C.CurriculumConfig()
        if isinstance(raw, list):  # a bare list of stages
            raw = {"stages": raw}
    if cls is C.CurriculumStage and isinstance(raw, dict) \
            and "from_epoch" in raw and "from_fraction" in raw:
        problems.add(path, "give from_epoch or from_fraction, not both")
    if not isinstance(raw, dict):
        problems.add(path, f"expected a table, got {describe(raw)}")
        return base if base is not None else cls()
    names = field_names(cls)
    for key in raw:
        if key not in names:
            problems.add(join(path, key), "unknown key" + suggest(key, names)
                         + f"; expected one of: {', '.join(names)}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        fpath = join(path, f.name)
        fallback = getattr(base, f.name) if base is not None else _default(f)
        values[f.name] = convert_value(hints(cls)[f.name], raw[f.name], fpath, problems,
                                       f.metadata, fallback)
    try:
        if base is not None:
            return dataclasses.replace(base, **values)
        return cls(**values)
    except TypeError as e:  # a required field missing
        problems.add(path, str(e))
        return None


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def convert_value(tp, value, path: str, problems: Problems, meta, fallback):
    """Check and convert one value of declared type `tp`; on a problem return `fallback`."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        sub_base = fallback if isinstance(fallback, tp) else None
        # a nested table replaces the section's default as a whole, key by key from defaults
        out = convert(tp, value, path, problems, base=None)
        return out if out is not None else sub_base
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            problems.add(path, f"expected one of {', '.join(map(repr, choices))}, got "
                         f"{describe(value)}" + (suggest(value, choices) if isinstance(value, str) else ""))
            return fallback
        return value
    if tp is type(None):  # an optional key left unset (never written in TOML)
        if value is not None:
            problems.add(path, f"expected nothing, got {describe(value)}")
            return fallback
        return None
    if origin in (types.UnionType, typing.Union):
        closest = None  # the problems of an option of the value's type (a bound, not a type)
        for option in get_args(tp):
            sub = Problems()
            out = convert_value(option, value, path, sub, meta, fallback)
            if not sub:
                return out
            if closest is None and not any(p.message.startswith("expected") for p in sub):
                closest = sub
        if closest:
            for p in closest:
                problems.add(p.key, p.message)
            return fallback
        names = " or ".join(_type_name(o) for o in get_args(tp) if o is not type(None))
        problems.add(path, f"expected {names}, got {describe(value)}")
        return fallback
    if origin is tuple:
        (item_tp, _) = get_args(tp)
        if not isinstance(value, list):
            problems.add(path, f"expected an array of {_type_name(item_tp)}, got {describe(value)}")
            return fallback
        if meta.get("nonempty") and not value:
            problems.add(path, "must not be empty")
            return fallback
        sub = Problems()
        items = tuple(convert_value(item_tp, v, join(path, i), sub, meta, None)
                      for i, v in enumerate(value))
        for p in sub:
            problems.add(p.key, p.message)
        return fallback if sub else items
    # scalars
    if tp is bool:
        if not isinstance(value, bool):
            problems.add(path, f"expected true or false, got {describe(value)}")
            return fallback
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                problems.add(path, f"expected an integer, got {describe(value)} (write {int(value)})")
            else:
                problems.add(path, f"expected an integer, got {describe(value)}")
            return fallback
        return _bounds(value, path, problems, meta, fallback)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.add(path, f"expected a number, got {describe(value)}")
            return fallback
        return _bounds(float(value), path, problems, meta, fallback)
    if tp is str:
        if not isinstance(value, str):
            problems.add(path, f"expected a string, got {describe(value)}")
            return fallback
        return value
    raise TypeError(f"unsupported field type {tp!r} at {path}")  # a bug in config.py


INT64 = (-2 ** 63, 2 ** 63 - 1)  # what every integer key must fit in (torch, Parquet)


def _bounds(value, path, problems, meta, fallback):
    if isinstance(value, float) and not math.isfinite(value):
        problems.add(path, f"must be a finite number, got {value!r}")
        return fallback
    if isinstance(value, int) and "max" not in meta and not INT64[0] <= value <= INT64[1]:
        problems.add(path, f"must fit in 64 bits ({INT64[0]} … {INT64[1]}), got {value}")
        return fallback
    ok = True
    if "min" in meta and value < meta["min"]:
        problems.add(path, f"must be ≥ {meta['min']}, got {value!r}")
        ok = False
    if "gt" in meta and value <= meta["gt"]:
        problems.add(path, f"must be > {meta['gt']}, got {value!r}")
        ok = False
    if "max" in meta and value > meta["max"]:
        problems.add(path, f"must be ≤ {meta['max']}, got {value!r}")
        ok = False
    if meta.get("even") and isinstance(value, int) and value % 2:
        problems.add(path, f"must be even (resolutions are even pixel sides), got {value}")
        ok = False
    return value if ok else fallback


def _type_name(tp) -> str:
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is str:
        return "a string"
    if get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))
