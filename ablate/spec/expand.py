"""A study → its trials: variants × grid combinations × seeds, in spec order.

Also home of the cross-field rules, checked on every resolved trial (a variant or a grid point
may change sizes, epochs or resolutions): a problem found in a section that the variant or grid
point did not touch is reported once, under its plain key.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from ablate.spec import config as C
from ablate.spec import curriculum
from ablate.spec.config import axis_target
from ablate.spec.convert import Problems, convert_value, hints
from ablate.spec.footprint import too_big
from ablate.spec.ids import freeze, make_trial_id
from ablate.spec.source import resolve_prescale


def _set(section_obj, key, raw):
    """Replace one key of a section with a (validated) raw value."""
    cls = type(section_obj)
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == key)
    value = convert_value(hints(cls)[key], raw, key, Problems(), meta, getattr(section_obj, key))
    return dataclasses.replace(section_obj, **{key: value})


def resolve(study: C.Study, variant: C.VariantConfig, point: tuple[tuple[str, object], ...]):
    """The (data, model, train) sections of one variant at one grid point."""
    sections = {"data": study.data, "model": study.model, "train": study.train}
    sections["train"] = dataclasses.replace(
        sections["train"], jitter=variant.jitter, multiscale=variant.multiscale,
        curriculum=variant.curriculum)
    sections["model"] = dataclasses.replace(sections["model"], sigmas=variant.sigmas)
    for dotted, raw in variant.overrides:
        section, key = dotted.split(".", 1)
        sections[section] = _set(sections[section], key, raw)
    for axis, raw in point:
        section, key = axis_target(axis)
        sections[section] = _set(sections[section], key, raw)
    sections["data"] = resolve_data(sections["data"])
    sections["model"] = sections["model"].resolved()
    return sections["data"], sections["model"], sections["train"]


def resolve_data(data: C.DataConfig) -> C.DataConfig:
    """`prescale = "auto"` replaced by its number for the source, so that the trial id changes
    whenever the data do (ablate.spec.source.resolve_prescale)."""
    if data.prescale == "auto":
        return dataclasses.replace(data, prescale=resolve_prescale(data.source, "auto"))
    return data


def expand(study: C.Study, problems: Problems | None = None,
           notes: list[str] | None = None) -> list[C.TrialConfig]:
    """Every trial of the study. With `problems`, cross-field rule violations are collected
    there (used by validation); without, the study is assumed valid. `notes` collects what
    the user should know about the resolution (a curriculum scaled to other epochs)."""
    problems = problems if problems is not None else Problems()
    notes = notes if notes is not None else []
    axes = [axis for axis, _ in study.grid]
    points = [tuple(zip(axes, combo)) for combo in itertools.product(*(v for _, v in study.grid))]
    spec_dir = str(Path(study.path).resolve().parent) if study.path and Path(study.path).exists() else ""
    trials: list[C.TrialConfig] = []
    seen: dict[str, str] = {}
    for order, variant in enumerate(study.variants):
        for point in points:
            where = f'variant "{variant.name}"' + (f" at grid {_point(point)}" if point else "")
            for seed in study.study.seeds:
                trial, note = make_trial(
                    study, variant, resolve(study, variant, point), seed, grid=_freeze(point),
                    where=where, problems=problems, spec_dir=spec_dir,
                    variant_path=(f'variant[{order + 1}] "{variant.name}"'
                                  if study.raw.get("variant") else ""))
                if note and f"{where}: {note}" not in notes:
                    notes.append(f"{where}: {note}")
                name = f"{where}, seed {seed}"
                if trial.trial_id in seen:
                    problems.add(f'variant "{variant.name}"',
                                 f"{name} has the same resolved config as "
                                 f"{seen[trial.trial_id]} (trial {trial.trial_id}); make them "
                                 "differ or remove one")
                    continue
                seen[trial.trial_id] = name
                trials.append(trial)
    return trials


def make_trial(study: C.Study, variant: C.VariantConfig, sections, seed: int, *, grid=(),
               where: str = "", problems: Problems | None = None, spec_dir: str = "",
               variant_path: str = "", label: str | None = None,
               name: str | None = None) -> tuple[C.TrialConfig, str]:
    """THE trial factory (`expand`, the search sampler and `--confirm` all come here): the
    resolved (data, model, train) `sections` of `variant` (after its overrides, grid point or
    search point), checked, its curriculum scaled to train.epochs, its id hashed. Returns the
    trial and the note of the curriculum's scaling ("" if none); problems go to `problems`."""
    data, model, train = sections
    problems = problems if problems is not None else Problems()
    check(study, data, model, train, where or f'variant "{variant.name}"', problems,
          variant_path=variant_path, stage_epochs=variant.stage_epochs)
    train, note = curriculum.with_epochs(train, variant.stage_epochs)
    order = next(i for i, v in enumerate(study.variants) if v.name == variant.name)
    return C.TrialConfig(
        study=study.name, variant=name or variant.name, label=label or variant.label, seed=seed,
        data=data, model=model, train=train, grid=grid,
        trial_id=make_trial_id(data, model, train, seed), variant_order=order,
        spec_dir=spec_dir), note


def _point(point) -> str:
    return ", ".join(f"{k}={C.format_value(v)}" for k, v in point)


def _freeze(point):
    return tuple((k, freeze(v)) for k, v in point)


def check(study: C.Study, data: C.DataConfig, model: C.ModelConfig, train: C.TrainConfig,
          where: str, problems: Problems, variant_path: str = "", stage_epochs: int = 0) -> None:
    """Cross-field rules of one resolved trial (its curriculum as written)."""

    def add(section: str, key: str, message: str) -> None:
        base = getattr(study, section)
        own = {"data": data, "model": model, "train": train}[section]
        axis = key.split(".")[0]
        if variant_path and section == "train" and axis in ("jitter", "multiscale", "curriculum") \
                and getattr(own, axis) != getattr(base, axis):
            problems.add(f"{variant_path}.{key}", message)  # where the user wrote it
            return
        suffix = "" if own == base else f" (in {where})"
        problems.add(f"{section}.{key}", message + suffix)

    try:
        cifar = data.parsed_source.kind == "cifar10"
    except ValueError as e:
        add("data", "source", str(e))
        cifar = False
    if data.hr_size < data.input_size:
        add("data", "hr_size", f"must be ≥ data.input_size ({data.input_size}): ground truth "
            f"comes from HR crops downsampled to the input, got {data.hr_size}")
    if not cifar:
        above = [r for r in data.eval_resolutions if r > data.hr_size]
        if above:
            add("data", "eval_resolutions", f"{above} exceed data.hr_size ({data.hr_size}): there "
                "is no ground truth above the HR size; raise hr_size or drop them")
    elif data.hr_size != 32 or data.input_size != 32:
        add("data", "hr_size", "cifar10 images are 32×32: set data.hr_size = 32 and "
            "data.input_size = 32 (eval resolutions above 32 are recorded as missing)")
    if cifar and data.prescale not in ("auto", 1, 1.0):
        add("data", "prescale", f'cifar10 images are 32×32 and cannot be prescaled: set '
            f'data.prescale = 1 or "auto", got {data.prescale:g}')
    if len(set(data.eval_resolutions)) != len(data.eval_resolutions):
        add("data", "eval_resolutions", f"resolutions repeat: {list(data.eval_resolutions)}")
    if model.kind == "lainr":  # the seed's sizes (LIIF ignores them)
        _check_lainr(data, model, add)
    ms, cur = train.multiscale, train.curriculum
    limit = data.hr_size if not cifar else 32
    if ms.mode != "off":
        high = [r for r in ms.resolutions if r > limit]
        if high:
            add("train", "multiscale.resolutions", f"{high} exceed data.hr_size ({limit}): "
                "targets come from the HR crops")
    if cur.stages:
        if ms.mode == "off":
            add("train", "curriculum", "a curriculum sets the training resolutions per stage; "
                'it needs multiscale.mode = "random_res", "hr_sample" or "upsampled_input", '
                'not "off"')
        for key, message in curriculum.problems_of(cur, train.epochs, stage_epochs):
            add("train", f"curriculum.{key}", message)
        for i, s in enumerate(cur.stages, start=1):
            high = [r for r in s.resolutions if r > limit]
            if high:
                add("train", f"curriculum.stages[{i}].resolutions",
                    f"{high} exceed data.hr_size ({limit})")
    if model.kind == "lainr" and len(set(model.sigmas)) != len(model.sigmas):
        add("model", "sigmas", f"values repeat: {list(model.sigmas)}")
    big = too_big(data, model, train)
    if big:
        section, key = big[0].split(".", 1)
        add(section, key, big[1])


def _check_lainr(data: C.DataConfig, model: C.ModelConfig, add) -> None:
    """The seed's model: its patches tile the input, its 2-D locality has a token per patch."""
    if data.input_size % model.patch_size:
        add("model", "patch_size", f"must divide data.input_size ({data.input_size}), "
            f"got {model.patch_size}")
    else:
        patches = (data.input_size // model.patch_size) ** 2
        if model.locality == "2d" and model.num_latents != patches:
            add("model", "num_latents", f'model.locality = "2d" places LP token j at patch j: '
                f"it needs num_latents = (input_size / patch_size)² = {patches}, got "
                f'{model.num_latents} (or use locality = "raster" or "none")')
    if model.feature_dim % 4:
        add("model", "feature_dim", f"must be a multiple of 4 (sin and cos of feature_dim / 4 "
            f"frequencies on each axis), got {model.feature_dim}")
