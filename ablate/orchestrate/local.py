"""`--executor local`: the same trial function, one trial after another, in this process."""

from __future__ import annotations

from ablate.orchestrate.progress import Progress
from ablate.orchestrate.record import record_trial
from ablate.orchestrate.study_files import mark_running
from ablate.results.layout import StudyDir
from ablate.spec.config import TrialConfig


def run_local(trials: list[TrialConfig], study_dir: StudyDir, progress: Progress,
              device: str = "auto") -> dict[str, str]:
    """Run `trials` in order; returns trial_id → error for the failed ones."""
    failures = {}
    for cfg in trials:
        mark_running(study_dir, cfg)
        progress.start(cfg)

        def on_epoch(r, _ckpt, cfg=cfg):
            mark_running(study_dir, cfg, r.epoch)
            progress.epoch(cfg, r.epoch, r.loss, r.quick_psnr, r.img_per_s)

        ok, rows = record_trial(cfg, study_dir, device=device, on_epoch=on_epoch,
                                log=lambda m: progress.note(m) if m.startswith("warning") else None)
        if not ok:
            failures[cfg.trial_id] = rows[0]["error"]
        progress.finish(cfg, ok, "" if ok else rows[0]["error"], rows=rows)
    return failures
