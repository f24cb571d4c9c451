"""`ablate run`: a whole study, skipping what is done, on Ray Tune or locally.

    summary = run_study(study, results="results", executor="ray")

Steps: lock the study directory; copy the spec and write plan.json (the trial list of this
run, which `ablate status` reads); drop every trial that already has a completed row; run the
rest on the chosen executor; report failures. Interrupted trials resume from their latest
checkpoint on the next run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ablate.orchestrate.lock import StudyLock
from ablate.orchestrate.preflight import RunError, check_data, check_device
from ablate.orchestrate.progress import Progress
from ablate.orchestrate.study_files import completed_ids
from ablate.results.write import write_spec_copy
from ablate.spec import Study, expand


@dataclass
class RunSummary:
    study_root: Path
    total: int
    skipped: int
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # trial_id → error
    unfinished: list[str] = field(default_factory=list)  # interrupted (Ctrl-C)

    @property
    def exit_code(self) -> int:
        """0 all completed; 1 some failed; 130 stopped early (Ctrl-C) with none failed."""
        if self.failed:
            return 1
        return 130 if self.unfinished else 0


def write_plan(study_root: Path, study: Study, trials) -> None:
    plan = {"study": study.name, "spec": os.path.abspath(study.path),
            "overrides": list(study.overrides),
            "trials": [{"trial_id": t.trial_id, "variant": t.variant, "seed": t.seed,
                        "grid": t.grid_key(), "epochs": t.train.epochs} for t in trials]}
    tmp = study_root / f".plan.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(plan, indent=1))
    os.replace(tmp, study_root / "plan.json")


def run_study(study: Study, results: str | Path = "results", *, executor: str = "ray",
              address: str | None = None, max_concurrent: int = 0, storage: str | None = None,
              device: str = "auto", progress_stream=None, live: bool | None = None,
              on_connect=None) -> RunSummary:
    """Run every trial of `study` that has no completed row under RESULTS/<study>/."""
    if executor not in ("ray", "local"):
        raise RunError(f"--executor {executor!r}: expected ray or local")
    study_root = Path(results) / study.name
    trials = expand(study)
    if executor == "local":
        check_device(device)
    with StudyLock(study_root):
        write_spec_copy(study_root, study.path, study.overrides)
        write_plan(study_root, study, trials)
        done = completed_ids(study_root)
        pending = [t for t in trials if t.trial_id not in done]
        check_data(pending)
        summary = RunSummary(study_root=study_root, total=len(trials),
                             skipped=len(trials) - len(pending))
        with Progress(total=len(pending), skipped=summary.skipped, stream=progress_stream,
                      live=live) as progress:
            progress.note(f"{study.name}: {len(trials)} trials, {summary.skipped} already "
                          f"completed, {len(pending)} to run ({executor}) → {study_root}")
            if not pending:
                return summary
            if executor == "local":
                from ablate.orchestrate.local import run_local

                summary.failed = run_local(pending, study_root, progress, device=device)
                finished = completed_ids(study_root)
            else:
                from ablate.orchestrate.ray_tune import connect, run_ray

                cluster = connect(address)
                if on_connect:
                    on_connect(cluster)
                progress.note(
                    f"Ray: {'cluster ' + cluster.address if cluster.address else 'embedded local Ray'}"
                    f", {cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs"
                    + (f"; dashboard {cluster.dashboard_url} (token auth on: the token is in "
                       "~/.ray/auth_token, or run `ray get-auth-token`)"
                       if cluster.dashboard_url else ""))
                summary.failed, _ = run_ray(pending, study_root, study.resources, cluster,
                                            progress, storage=storage,
                                            max_concurrent=max_concurrent)
                finished = completed_ids(study_root)
        summary.completed = [t.trial_id for t in pending if t.trial_id in finished]
        summary.unfinished = [t.trial_id for t in pending
                              if t.trial_id not in finished and t.trial_id not in summary.failed]
        return summary
