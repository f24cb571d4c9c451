"""manifest.json: the study that ran, resolved, written when a run starts.

    write_manifest(study_dir, Manifest.from_study(study, trials))   # ablate run / ablate trial
    m = study_manifest(study_dir)        # results/read.py: the table, status and report

It holds what the readers need about the study beyond the Parquet rows, as the spec resolved
it (defaults, `--set` overrides, variants and grid applied): the variants in spec order with
their labels, the baseline, the seeds, the grid points in order, the input size and eval
resolutions, and the planned trials (id, variant, seed, grid point, epochs). So `ablate table`,
`status` and `report` never re-read TOML. Each run rewrites it (the latest run's study).

Results written before manifest.json existed have `plan.json` and a `study.toml` copy instead:
`study_manifest` (results/read.py) reads those through ``results/legacy.py``. Torch-free, Ray-free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.results.atomic import atomic_write_text
from ablate.results.layout import StudyDir
from ablate.version import code_version

if TYPE_CHECKING:
    from ablate.spec.config import Study, TrialConfig

FORMAT = 1  # raised when a field changes meaning; readers refuse formats they do not know


class ManifestError(ValueError):
    """A manifest (or the previous layout's plan and spec copy) that cannot be read; the
    message names the file and what to do."""


@dataclass(frozen=True)
class PlannedTrial:
    trial_id: str
    variant: str
    seed: int
    grid: str = ""  # grid point, e.g. "sigmas=[128,32]" ("" without a grid)
    epochs: int = 0

    def describe(self) -> str:
        """"variant seed s [grid]", as `ablate status` lists it."""
        return f"{self.variant} seed {self.seed}" + (f" [{self.grid}]" if self.grid else "")


@dataclass(frozen=True)
class PlannedVariant:
    name: str
    label: str


@dataclass(frozen=True)
class Manifest:
    study: str
    baseline: str  # variant name
    seeds: tuple[int, ...]
    variants: tuple[PlannedVariant, ...]  # spec order
    grid: tuple[str, ...]  # grid points in spec order (empty without a grid)
    input_size: int | None  # the model's input side (None: unknown, previous layout only)
    eval_resolutions: tuple[int, ...]  # every trial's, sorted
    trials: tuple[PlannedTrial, ...]  # the run's trials, in plan order
    spec: str = ""  # the spec file that ran (absolute path)
    description: str = ""  # the study's description (spec `study.description`)
    overrides: tuple[str, ...] = ()  # its --set items, as given
    written_by: str = ""  # code version of the writer
    written_at: str = ""  # UTC ISO time
    format: int = FORMAT

    @classmethod
    def from_study(cls, study: "Study", trials: "list[TrialConfig]") -> "Manifest":
        return cls(
            study=study.name, baseline=study.baseline, seeds=tuple(study.study.seeds),
            variants=tuple(PlannedVariant(v.name, v.label) for v in study.variants),
            grid=tuple(g for g in dict.fromkeys(t.grid_key() for t in trials) if g),
            input_size=study.data.input_size,
            eval_resolutions=tuple(sorted({r for t in trials for r in t.data.eval_resolutions})),
            trials=tuple(PlannedTrial(t.trial_id, t.variant, t.seed, t.grid_key(),
                                      t.train.epochs) for t in trials),
            spec=str(Path(study.path).resolve()) if study.path else "",
            description=study.study.description,
            overrides=tuple(str(o) for o in study.overrides),
            written_by=code_version(),
            written_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    @property
    def labels(self) -> dict[str, str]:
        return {v.name: v.label for v in self.variants}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc, where: str = "manifest.json") -> "Manifest":
        """Check the types of every field; raises ManifestError saying what is wrong."""
        if not isinstance(doc, dict):
            raise ManifestError(f"{where}: expected a JSON object")
        fmt = doc.get("format")
        if fmt != FORMAT:
            newer = isinstance(fmt, int) and fmt > FORMAT
            raise ManifestError(
                f"{where}: format {fmt!r}, this ablate reads format {FORMAT}"
                + ("; it was written by a newer ablate: upgrade ablate to read it" if newer
                   else "; run the study again (`ablate run`) to rewrite it"))
        try:
            return cls(
                study=_typed(doc, "study", str), baseline=_typed(doc, "baseline", str),
                seeds=tuple(_typed(doc, "seeds", list)),
                variants=tuple(PlannedVariant(str(v["name"]), str(v["label"]))
                               for v in _typed(doc, "variants", list)),
                grid=tuple(str(g) for g in _typed(doc, "grid", list)),
                input_size=doc.get("input_size"),
                eval_resolutions=tuple(int(r) for r in _typed(doc, "eval_resolutions", list)),
                trials=tuple(PlannedTrial(str(t["trial_id"]), str(t["variant"]), int(t["seed"]),
                                          str(t.get("grid", "")), int(t.get("epochs", 0)))
                             for t in _typed(doc, "trials", list)),
                spec=str(doc.get("spec", "")), overrides=tuple(doc.get("overrides", ())),
                description=str(doc.get("description", "")),
                written_by=str(doc.get("written_by", "")),
                written_at=str(doc.get("written_at", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestError(f"{where}: {type(e).__name__}: {e}; run the study again "
                                "(`ablate run`) to rewrite it") from None


def _typed(doc: dict, key: str, tp: type):
    if not isinstance(doc.get(key), tp):
        raise TypeError(f"{key!r} missing or not a {tp.__name__}")
    return doc[key]


def write_manifest(study_dir: StudyDir, manifest: Manifest) -> Path:
    return atomic_write_text(study_dir.manifest, json.dumps(manifest.to_json(), indent=1) + "\n")
