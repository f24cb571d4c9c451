"""What a run changes in a study folder that holds earlier results (`ablate run`, `ablate trial`).

    c = study_changes(study_dir, expand(study))
    c.changed     # [(dotted key, old, new)]: settings that differ from the finished trials'
    c.orphans     # finished trials of the study's own plan that the new plan no longer holds
    c.lines()     # what the run prints before it starts ([] when nothing changed)

A finished trial (completed, from its trial file) belongs to the study while its id is in the
plan; the id hashes the whole trial config, so a changed setting gives new ids and leaves the
finished trials behind. Only trials the previous run planned (its manifest) are reported: those
an earlier change already left behind were reported then, and are not again at every run. Each of those is compared with the new plan's trial at the same
variant, seed and grid point (their `config_json` against `trial_to_dict`), setting by setting (spec/settings.py); one
with no such trial is a variant, seed or grid point the study no longer has. Extending a study
(more seeds, another variant, nothing else changed) leaves no finished trial behind: nothing
is printed. Sampled trials of `ablate search` (their `search` column set) are the search's, not
the plan's, and are never orphans. The files stay: `ablate table`, `status` and `report` read
the manifest's trials only and name the others apart (results/read.py `StudyResults.apart`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ablate.results.layout import StudyDir
from ablate.results.manifest import ManifestError
from ablate.results.read import describe_trial, study_manifest
from ablate.results.trial_file import read_trial_file
from ablate.spec.config import TrialConfig
from ablate.spec.ids import trial_to_dict
from ablate.spec.settings import settings, show

_SHOWN = 6  # keys and trials listed by name; the rest counted


@dataclass
class Changes:
    changed: list[tuple[str, str, str]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # "variant seed s [grid] (id)"

    def lines(self) -> list[str]:
        if not self.orphans:
            return []
        out = []
        if self.changed:
            keys = [f"{k}: {old} → {new}" for k, old, new in self.changed[:_SHOWN]]
            more = f"; and {len(self.changed) - _SHOWN} more" if len(self.changed) > _SHOWN \
                else ""
            out.append("changed against the study's finished trials: " + "; ".join(keys) + more)
        names = ", ".join(self.orphans[:_SHOWN])
        more = f" and {len(self.orphans) - _SHOWN} more" if len(self.orphans) > _SHOWN else ""
        out.append(f"{len(self.orphans)} finished trial(s) no longer belong to the study: "
                   f"{names}{more}. Their files stay; `ablate table`, `status` and `report` "
                   "show the study as it is now and name them apart")
        return out


def study_changes(study_dir: StudyDir, trials: list[TrialConfig]) -> Changes:
    planned = {t.trial_id for t in trials}
    try:
        previous = study_manifest(study_dir)
    except ManifestError:
        previous = None
    before = {t.trial_id for t in previous.trials} if previous is not None else None
    at_point = {(t.variant, t.seed, t.grid_key()): t for t in trials}
    changes = Changes()
    changed: dict[str, tuple[str, str]] = {}
    if not study_dir.trials_dir.is_dir():
        return changes
    for f in sorted(study_dir.trials_dir.glob("*.parquet")):
        if f.stem in planned or (before is not None and f.stem not in before):
            continue
        tf = read_trial_file(f)
        if tf.state != "completed":
            continue
        row = tf.table.slice(0, 1).to_pylist()[0]
        if row.get("search"):
            continue  # a sampled trial of `ablate search`
        variant, seed, grid = str(row["variant"]), int(row["seed"]), str(row.get("grid") or "")
        changes.orphans.append(describe_trial(tf.table, f.stem))
        new = at_point.get((variant, seed, grid))
        try:
            old = json.loads(row.get("config_json") or "")
        except ValueError:
            continue
        if new is None or not isinstance(old, dict):
            continue
        was, now = settings(old), settings(trial_to_dict(new))
        for key in sorted(set(was) | set(now)):
            a, b = was.get(key, "(unset)"), now.get(key, "(unset)")
            if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True,
                                                                          default=str):
                changed.setdefault(key, (show(a), show(b)))
    changes.changed = [(k, a, b) for k, (a, b) in sorted(changed.items())]
    return changes
