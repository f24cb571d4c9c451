"""Reading study directories written before manifest.json existed.

Those have `plan.json` (written by `ablate run`: study name, spec path, `--set` overrides, the
trial list) and `study.toml`, a copy of the spec whose last line may be
``# ablate --set (json): [...]``, the overrides to replay. `legacy_manifest` rebuilds a
`Manifest` from them: the study facts from the spec copy validated again with the overrides
applied (as the run applied them), the trials from plan.json (else from the expansion). When
the spec copy no longer validates, plan.json alone gives the trials, variants (named, without
labels), seeds and grid points. Nothing here writes.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib

from ablate.results.layout import StudyDir
from ablate.results.manifest import Manifest, ManifestError, PlannedTrial, PlannedVariant
from ablate.spec import SpecError, expand
from ablate.spec.parse import build_study

OVERRIDES_MARK = "# ablate --set (json): "  # the line the previous version appended


def legacy_manifest(study_dir: StudyDir) -> Manifest | None:
    """A Manifest from plan.json and/or study.toml, or None when neither exists."""
    plan = _plan(study_dir)
    text = study_dir.spec_copy.read_text(encoding="utf-8") if study_dir.spec_copy.is_file() else None
    if plan is None and text is None:
        return None
    overrides = _overrides(text) if text is not None else None
    if overrides is None:
        overrides = [str(o) for o in (plan or {}).get("overrides", [])]
    planned = _planned(plan) if plan is not None else None
    problem = ""
    if text is not None:
        try:
            study = build_study(tomllib.loads(text), str(study_dir.spec_copy), overrides)
        except (SpecError, tomllib.TOMLDecodeError) as e:
            problem = " ".join(str(e).split())
        else:
            m = Manifest.from_study(study, expand(study))
            return dataclasses.replace(
                m, trials=planned if planned is not None else m.trials,
                spec=str((plan or {}).get("spec", "")), written_by="", written_at="")
    if planned is None:
        raise ManifestError(f"{study_dir.spec_copy} no longer validates ({problem[:300]}); "
                            "the study's variants, labels and baseline are taken from its rows")
    variants = tuple(dict.fromkeys(t.variant for t in planned))
    return Manifest(
        study=str(plan.get("study", study_dir.name)), baseline=variants[0] if variants else "",
        seeds=tuple(sorted({t.seed for t in planned})),
        variants=tuple(PlannedVariant(v, v) for v in variants),
        grid=tuple(g for g in dict.fromkeys(t.grid for t in planned) if g),
        input_size=None, eval_resolutions=(), trials=planned,
        spec=str(plan.get("spec", "")), overrides=tuple(overrides))


def _plan(study_dir: StudyDir) -> dict | None:
    path = study_dir.legacy_plan
    if not path.is_file():
        return None
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
        raise ManifestError(f"{path}: cannot be read ({e}); run the study again (`ablate run`) "
                            "to write a manifest.json") from None
    if not isinstance(plan, dict):
        raise ManifestError(f"{path}: expected a JSON object; run the study again")
    for key, kind in (("overrides", list), ("trials", list), ("study", str), ("spec", str)):
        if key in plan and not isinstance(plan[key], kind):
            raise ManifestError(f"{path}: {key!r} is not a {'list' if kind is list else 'string'}"
                                "; run the study again (`ablate run`) to write a manifest.json")
    return plan


def _planned(plan: dict) -> tuple[PlannedTrial, ...]:
    try:
        return tuple(PlannedTrial(str(t["trial_id"]), str(t["variant"]), int(t["seed"]),
                                  str(t.get("grid", "")), int(t.get("epochs", 0)))
                     for t in plan.get("trials", []))
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"plan.json: a trial entry lacks {e}; run the study again "
                            "(`ablate run`) to write a manifest.json") from None


def _overrides(text: str) -> list[str] | None:
    """The `--set` items of the comment line, or None when the copy has none."""
    for line in text.splitlines():
        if line.startswith(OVERRIDES_MARK):
            try:
                return [str(x) for x in json.loads(line[len(OVERRIDES_MARK):])]
            except ValueError:
                return None
    return None
