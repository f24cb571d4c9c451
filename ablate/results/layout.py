"""Every path of a study directory, in one place.

```
<results>/<study>/manifest.json                  the study that ran (results/manifest.py)
<results>/<study>/trials/<trial_id>.parquet      one row per eval resolution (TRIAL_COLUMNS);
        its presence means the trial finished (completed or failed)
<results>/<study>/history/<trial_id>.parquet     one row per epoch (HISTORY_COLUMNS)
<results>/<study>/images/<trial_id>.parquet      one row per eval resolution × held-out crop
        (IMAGE_COLUMNS); completed trials only
<results>/<study>/artifacts/<trial_id>/predictions.npz   held-out images at the top
        resolution: input (n,3,s,s), bicubic, prediction, truth (n,3,R,R), float32 in [0, 1]
<results>/<study>/artifacts/<trial_id>/spectra.parquet   radially averaged power spectra
        (SPECTRA_COLUMNS): kind ∈ {truth, bicubic, model}, per eval resolution above input
<results>/<study>/running/<trial_id>.json        a trial started and not yet committed (its
        latest epoch); left behind by an interrupted run
<results>/<study>/checkpoints/<trial_id>/        the latest epoch checkpoint (local executor,
        `ablate trial`): checkpoint.pt, meta.json, history.parquet
<results>/<study>/ray/                           Ray's storage (default): run-*/<trial_id>/
        checkpoint_*/ with the same files
<results>/<study>/study.toml                     a copy of the spec file (for people)
<results>/<study>/.run.lock                      held by the `ablate run` or `ablate trial`
        working on the study
<results>/<study>/.stage-<trial_id>-*/           a finished trial's files while they are
        staged for the commit (TrialFiles)
<results>/<study>/.work/ablate-<trial_id>-*/      a Ray worker's work folder while it trains
<results>/<study>/search/<name>/search.json      what `ablate search` <name> optimises
<results>/<study>/search/<name>/confirm.json     the configurations its --confirm re-ran
<results>/<study>/search/<name>/started/<trial_id>.json   the params of each trial it started
```

Written before manifest.json existed (still read, ``results/legacy.py``): ``plan.json`` (the
trial list) and ``study.toml`` ending in a ``# ablate --set (json): [...]`` line.

A finished trial's files are first put together in one directory (`TrialFiles`: a staging
folder, or a Ray trial's final checkpoint) and then committed into the study by
``results/commit.py``. Ray-free, torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
SPEC_COPY = "study.toml"
LOCK = ".run.lock"
LEGACY_PLAN = "plan.json"
SEARCHES = "search"  # <study>/search/<name>/: search.json, confirm.json, started/
STAGING_PREFIX = ".stage-"  # a trial's files being staged: <study>/.stage-<trial_id>-*/

PREDICTIONS_FILE = "predictions.npz"  # in artifacts/<trial_id>/
SPECTRA_FILE = "spectra.parquet"  # in artifacts/<trial_id>/

CHECKPOINT_FILE = "checkpoint.pt"  # in a checkpoint directory: the whole training state
CHECKPOINT_META = "meta.json"  # beside it: results/checkpoint_meta.py, read without torch
HISTORY_FILE = "history.parquet"  # beside it: the history so far (TrialFiles.history)

# Checkpoint directories, as globs of their meta.json
LOCAL_CHECKPOINTS = f"checkpoints/*/{CHECKPOINT_META}"  # under the study directory
RAY_CHECKPOINTS = f"*/*/checkpoint_*/{CHECKPOINT_META}"  # under Ray's storage path:
#   <storage>/<experiment>/<trial_id>/checkpoint_N/


@dataclass(frozen=True)
class StudyDir:
    """A study's directory and every path in it."""

    root: Path

    @classmethod
    def of(cls, results: str | Path, study: str) -> "StudyDir":
        """RESULTS/<study>/."""
        return cls(Path(results) / study)

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def name(self) -> str:
        return self.root.name

    # -- the study's own files --------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def spec_copy(self) -> Path:
        return self.root / SPEC_COPY

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def legacy_plan(self) -> Path:
        return self.root / LEGACY_PLAN

    # -- folders ----------------------------------------------------------------------------
    @property
    def trials_dir(self) -> Path:
        return self.root / "trials"

    @property
    def history_dir(self) -> Path:
        return self.root / "history"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def running_dir(self) -> Path:
        return self.root / "running"

    @property
    def work_dir(self) -> Path:
        """Ray workers' work folders (epoch checkpoints before Tune takes them, staged
        results); what a killed worker leaves here is swept by the next run."""
        return self.root / ".work"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def ray_storage(self) -> Path:
        """Ray's storage path when --storage is not given."""
        return self.root / "ray"

    # -- one trial's files ------------------------------------------------------------------
    def trial(self, trial_id: str) -> Path:
        return self.trials_dir / f"{trial_id}.parquet"

    def history(self, trial_id: str) -> Path:
        return self.history_dir / f"{trial_id}.parquet"

    def images(self, trial_id: str) -> Path:
        return self.images_dir / f"{trial_id}.parquet"

    def artifacts(self, trial_id: str) -> Path:
        return self.artifacts_dir / trial_id

    def running(self, trial_id: str) -> Path:
        return self.running_dir / f"{trial_id}.json"

    def checkpoint(self, trial_id: str) -> Path:
        """The local executor's checkpoint directory of a trial."""
        return self.checkpoints_dir / trial_id

    def staging_prefix(self, trial_id: str) -> str:
        """Name prefix of the temporary folders (in the study) where a trial's files are
        staged before the commit; left behind only by a killed process."""
        return f"{STAGING_PREFIX}{trial_id}-"

    # -- searches (`ablate search`) ---------------------------------------------------------
    @property
    def searches_dir(self) -> Path:
        return self.root / SEARCHES

    def search_dir(self, name: str) -> Path:
        """search/<name>/: what one search wrote besides its trial files."""
        return self.searches_dir / name

    def search_record(self, name: str) -> Path:
        """What the search optimises (results/search.py SearchRecord), written at its start."""
        return self.search_dir(name) / "search.json"

    def search_confirm(self, name: str) -> Path:
        """The configurations `--confirm K` re-ran with every seed, rank order."""
        return self.search_dir(name) / "confirm.json"

    def search_started(self, name: str) -> Path:
        """started/<trial_id>.json: the sampled params of every trial the search started
        (read back to resume one a killed driver interrupted)."""
        return self.search_dir(name) / "started"

    # -- what it holds ----------------------------------------------------------------------
    @property
    def has_results(self) -> bool:
        """It has a trials/ folder (what `ablate table` and `ablate report` read)."""
        return self.trials_dir.is_dir()

    @property
    def is_study(self) -> bool:
        """It holds a study: a manifest, trial results, or the previous layout's plan."""
        return self.manifest.is_file() or self.has_results or self.legacy_plan.is_file()


def find_studies(path: str | Path, with_results: bool = False) -> list[StudyDir]:
    """The study directories PATH stands for: itself if it is one, else its sub-folders that
    are (sorted by name). `with_results`: only those with a trials/ folder."""
    def ok(d: StudyDir) -> bool:
        return d.has_results if with_results else d.is_study

    here = StudyDir(Path(path))
    if ok(here):
        return [here]
    if not here.root.is_dir():
        return []
    return [d for d in (StudyDir(p) for p in sorted(here.root.iterdir()) if p.is_dir()) if ok(d)]


@dataclass(frozen=True)
class TrialFiles:
    """One finished trial's files together in one directory, before they are committed into
    a study (`results/commit.py`): a staging folder, or a Ray trial's final checkpoint, which
    carries them from the worker to the driver. An epoch checkpoint holds `history` too."""

    dir: Path

    def __post_init__(self):
        object.__setattr__(self, "dir", Path(self.dir))

    @property
    def trial(self) -> Path:
        return self.dir / "trial.parquet"

    @property
    def history(self) -> Path:
        return self.dir / HISTORY_FILE

    @property
    def images(self) -> Path:
        return self.dir / "images.parquet"

    @property
    def artifacts(self) -> Path:
        return self.dir / "artifacts"
