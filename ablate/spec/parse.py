"""Read a study file (TOML), apply ``--set`` overrides, validate everything, build a `Study`.

All problems of a file are collected and raised together as one `SpecError`, whose lines name
the file and the dotted key path and say what was expected. Nothing here raises a traceback
at the user for bad input.

Where a variant's or a grid axis's value lands in the resolved trial config:

    jitter → train.jitter      multiscale → train.multiscale
    curriculum → train.curriculum      sigmas → model.sigmas
    model = {...} / train = {...} / data = {...} in a variant: any other key of those sections
    a grid axis may also be any dotted key of data/model/train, e.g. "train.lr"

Order of application: defaults → file sections → ``--set`` → variant → grid point.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from ablate.spec import config as C
from ablate.spec.config import AXES, SECTIONS, TRIAL_SECTIONS, axis_target
from ablate.spec.convert import (Problem, Problems, convert, convert_value, describe, hints, join,
                                 suggest)
from ablate.spec.expand import expand
from ablate.spec.names import RULE, valid_name
from ablate.spec.search import parse_search

TOP_KEYS = [*SECTIONS, "grid", "variant", "search"]
VARIANT_KEYS = ["name", "label", *AXES, *TRIAL_SECTIONS]


class SpecError(Exception):
    """An invalid study: `problems` lists every problem found, each rendered with the file."""

    def __init__(self, file: str, problems: list):
        self.file = file
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.file}: {n} problem{'s' if n != 1 else ''} in the study spec:"
        return "\n".join([head, *("  " + p.render(self.file) for p in self.problems)])


# ---------------------------------------------------------------------------------------------
# reading and --set
# ---------------------------------------------------------------------------------------------


def read_toml(path: str | Path) -> dict:
    file = str(path)
    p = Path(path)
    if not p.exists():
        raise SpecError(file, [_p("", "file not found; give the path of a study .toml file "
                                     "(see studies/ for examples)")])
    if p.is_dir():
        raise SpecError(file, [_p("", "is a directory, expected a study .toml file")])
    try:
        text = p.read_text(encoding="utf-8-sig")  # a UTF-8 byte order mark is accepted
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(file, [_p("", f"cannot be read: {e}")]) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(file, [_p("", f"TOML syntax error: {e}")]) from None
    except RecursionError:
        raise SpecError(file, [_p("", "TOML nested too deeply to read (arrays or tables "
                                     "inside one another hundreds of levels deep)")]) from None
    if not doc:
        raise SpecError(file, [_p("", "the file holds no keys; a study needs at least a "
                                     "[study] table (see studies/ for examples)")])
    return doc


def _p(key, message):
    return Problem(key, message)


def parse_set(item: str) -> tuple[list[str], Any]:
    """'train.epochs=2' → (['train', 'epochs'], 2). The value is read as TOML; a bare word that
    is not TOML (e.g. name=demo) is taken as a string."""
    if "=" not in item:
        raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=2")
    if any(ch in item for ch in "\n\r\x00"):  # TOML would read the first line, drop the rest
        raise ValueError(f"--set {item!r}: one line only (it holds a line break)")
    key, value = item.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not part for part in parts):
        raise ValueError(f"--set {item!r}: the key must be a dotted path such as train.epochs")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    except RecursionError:
        raise ValueError(f"--set {key}: the value is nested too deeply to read") from None
    return parts, parsed


def apply_set(doc: dict, item: str, problems: Problems) -> None:
    try:
        parts, value = parse_set(item)
    except ValueError as e:
        problems.add("--set", str(e))
        return
    target: Any = doc
    if parts[0] == "variant" and len(parts) >= 3:  # variant.NAME.key…
        names = [v.get("name") for v in doc.get("variant", []) if isinstance(v, dict)]
        if parts[1] not in names:
            problems.add(f"--set {'.'.join(parts)}", f"no variant named {parts[1]!r}"
                         + suggest(parts[1], names) + f"; variants: {', '.join(map(str, names))}")
            return
        target = doc["variant"][names.index(parts[1])]
        parts = parts[2:]
    for part in parts[:-1]:
        nxt = target.get(part) if isinstance(target, dict) else None
        if nxt is None:
            nxt = target[part] = {}
        if not isinstance(nxt, dict):
            problems.add(f"--set {item.split('=')[0]}", f"{part!r} is not a table")
            return
        target = nxt
    target[parts[-1]] = value


# ---------------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------------


def load_study(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> C.Study:
    """Parse, override and validate a study file. Raises SpecError listing every problem."""
    doc = read_toml(path)
    try:
        return build_study(doc, str(path), overrides)
    except RecursionError:
        raise SpecError(str(path), [_p("", "nested too deeply to validate (arrays or tables "
                                          "inside one another hundreds of levels deep)")]) from None


def build_study(doc: dict, file: str = "<study>", overrides=()) -> C.Study:
    written = doc
    doc = copy.deepcopy(doc)
    problems = Problems()
    for item in overrides:
        apply_set(doc, item, problems)
    for key in doc:
        if key not in TOP_KEYS:
            problems.add(key, "unknown section" + suggest(key, TOP_KEYS)
                         + f"; expected one of: {', '.join(TOP_KEYS)}")

    sections = {}
    for name, cls in SECTIONS.items():
        raw = doc.get(name, {})
        sections[name] = convert(cls, raw, name, problems) if raw is not None else cls()
        if sections[name] is None:
            sections[name] = cls()
    study: C.StudySection = sections["study"]
    if not valid_name(study.name):
        problems.add("study.name", f"expected {RULE}, got {study.name!r}"
                     " (it names the results folder)")
    if len(set(study.seeds)) != len(study.seeds):
        problems.add("study.seeds", f"seeds repeat: {list(study.seeds)}")
    gpus = sections["resources"].gpus_per_trial
    if isinstance(gpus, str) and gpus != "auto":
        problems.add("resources.gpus_per_trial", f'expected a number ≥ 0 or "auto", got {gpus!r}')
    elif not isinstance(gpus, str) and gpus < 0:
        problems.add("resources.gpus_per_trial", f"must be ≥ 0, got {gpus}")
    elif not isinstance(gpus, str) and 0 < gpus < 1e-4:
        problems.add("resources.gpus_per_trial", f"must be 0 or ≥ 0.0001 (Ray counts resources "
                     f"in steps of 1e-4), got {gpus}")

    variants = [dataclasses.replace(v, stage_epochs=_written_epochs(written, v.name))
                for v in _variants(doc, sections, problems)]
    grid = _grid(doc, sections, problems)
    names = [v.name for v in variants]
    if study.baseline and study.baseline not in names:
        problems.add("study.baseline", f"names no variant: {study.baseline!r}"
                     + suggest(study.baseline, names) + f"; variants: {', '.join(names)}")

    result = C.Study(
        path=file, study=study, data=sections["data"], model=sections["model"],
        train=sections["train"], resources=sections["resources"], variants=tuple(variants),
        grid=tuple(grid), overrides=tuple(overrides), raw=doc,
    )
    # cross-field rules, on every resolved trial (a grid may change epochs, sizes, …); values
    # that failed above fell back to their defaults, so this still runs and finds the rest

    notes: list[str] = []
    expand(result, problems=problems, notes=notes)
    result = dataclasses.replace(result, notes=tuple(notes))
    if "search" in doc and variants:  # `ablate search` (ablate/spec/search.py)

        result = dataclasses.replace(result, search=parse_search(doc["search"], result, problems))
    if problems:
        set_keys = {item.split("=", 1)[0].strip() for item in overrides}
        marked = [p if p.key not in set_keys else type(p)(p.key, p.message + " (from --set)")
                  for p in problems]
        raise SpecError(file, marked)
    return result


def _variants(doc, sections, problems: Problems) -> list[C.VariantConfig]:
    raw_list = doc.get("variant")
    if raw_list is None:
        base = sections["train"]
        return [C.VariantConfig(name="base", label="base", jitter=base.jitter,
                                multiscale=base.multiscale, curriculum=base.curriculum,
                                sigmas=sections["model"].sigmas)]
    if not isinstance(raw_list, list) or not raw_list:
        problems.add("variant", "expected one or more [[variant]] tables")
        return []
    out, seen = [], {}
    for i, raw in enumerate(raw_list, start=1):
        path = f"variant[{i}]"
        if not isinstance(raw, dict):
            problems.add(path, f"expected a table, got {describe(raw)}")
            continue
        name = raw.get("name")
        if not valid_name(name):
            problems.add(join(path, "name"), f"required: a name of {RULE} "
                         f"(got {describe(name) if name is not None else 'nothing'})")
            name = f"variant{i}"
        else:
            path = f'variant[{i}] "{name}"'
            if name in seen:
                problems.add(join(path, "name"), f"duplicate variant name (also variant[{seen[name]}])")
            seen.setdefault(name, i)
        for key in raw:
            if key not in VARIANT_KEYS:
                problems.add(join(path, key), "unknown key" + suggest(key, VARIANT_KEYS)
                             + f"; a variant takes: {', '.join(VARIANT_KEYS)}")
        label = raw.get("label", name)
        if not isinstance(label, str):
            problems.add(join(path, "label"), f"expected a string, got {describe(label)}")
            label = name
        train, model = sections["train"], sections["model"]
        jitter = _axis(C.JitterConfig, raw, "jitter", path, problems, train.jitter)
        multiscale = _axis(C.MultiscaleConfig, raw, "multiscale", path, problems, train.multiscale)
        curriculum = _axis(C.CurriculumConfig, raw, "curriculum", path, problems, train.curriculum)
        sigmas = model.sigmas
        if "sigmas" in raw:
            sigmas = _value(C.ModelConfig, "sigmas", raw["sigmas"], join(path, "sigmas"), problems,
                            model.sigmas)
        overrides = []
        for section in TRIAL_SECTIONS:
            sub = raw.get(section)
            if sub is None:
                continue
            if not isinstance(sub, dict):
                problems.add(join(path, section), f"expected a table, got {describe(sub)}")
                continue
            # validate the variant's keys at their own path
            convert(SECTIONS[section], sub, join(path, section), problems, base=sections[section])
            overrides.extend((f"{section}.{k}", v) for k, v in _flatten(sub))
        out.append(C.VariantConfig(name=name, label=label, jitter=jitter, multiscale=multiscale,
                                   curriculum=curriculum, sigmas=sigmas, overrides=tuple(overrides)))
    return out


def _written_epochs(doc: dict, variant: str) -> int:
    """train.epochs as the spec file sets it for `variant` (before --set): what its
    curriculum's from_epoch stages were written for."""
    def epochs(section) -> int | None:
        value = section.get("epochs") if isinstance(section, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    for raw in doc.get("variant") or []:
        if isinstance(raw, dict) and raw.get("name") == variant and epochs(raw.get("train")):
            return epochs(raw["train"])
    return epochs(doc.get("train")) or C.TrainConfig().epochs


def _flatten(d: dict, prefix: str = ""):
    """Top-level keys only: a nested table (jitter = {...}) stays one value."""
    for k, v in d.items():
        yield (prefix + k, v)


def _axis(cls, raw, key, path, problems, default):
    if key not in raw:
        return default
    out = convert(cls, raw[key], join(path, key), problems)
    return out if out is not None else default


def _value(cls, key, value, path, problems, fallback):
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == key)
    return convert_value(hints(cls)[key], value, path, problems, meta, fallback)


def _grid(doc, sections, problems: Problems) -> list[tuple[str, tuple]]:
    raw = doc.get("grid", {})
    if not isinstance(raw, dict):
        problems.add("grid", f"expected a table of axis = [values…], got {describe(raw)}")
        return []
    out = []
    for axis, values in raw.items():
        path = join("grid", axis)
        target = axis_target(axis)
        if target is None:
            known = [*AXES] + [f"{s}.<key>" for s in TRIAL_SECTIONS]
            problems.add(path, "unknown axis" + suggest(axis, [*AXES]) + f"; an axis is one of "
                         f"{', '.join(known)}")
            continue
        section, key = target
        cls = SECTIONS[section]
        if key not in {f.name for f in dataclasses.fields(cls)}:
            names = [f.name for f in dataclasses.fields(cls)]
            problems.add(path, f"unknown key {key!r} of [{section}]" + suggest(key, names))
            continue
        if not isinstance(values, list) or not values:
            problems.add(path, f"expected a non-empty array of values, got {describe(values)}")
            continue
        typed = []
        for i, v in enumerate(values):
            typed.append(_value(cls, key, v, join(path, i), problems, None))
        if len({repr(t) for t in typed}) != len(typed):
            problems.add(path, "values repeat")
        out.append((axis, tuple(values)))
    return out

