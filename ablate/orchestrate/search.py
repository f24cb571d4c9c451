"""`ablate search`: Optuna's sampler on Ray Tune over a study's `[search]` space.

    summary = run_search(study, results="results")            # sample until num_samples
    summary = run_search(study, results="results", confirm=3) # …then re-run the best 3 with
                                                              #   every seed of the study

How it fits the rest (Ray 2.60 APIs):

* Each sampled point becomes a normal trial (`ablate.spec.search.sampled_trial`: the starting
  variant with the point applied like `--set`; id = hash of the resolved config; `search`
  column = the search's name), trained by the same worker code as `ablate run`
  (`worker.train_job`) and committed by the same driver callback into the same
  trials/ and history/ files. Its last report adds `objective` (the metric at the search's
  resolution), which Ray Tune's `OptunaSearch` tells Optuna.
* The Tune experiment is built by `driver.experiment`, as `ablate run`'s: the same storage
  (`--storage`: a directory, NFS or an object store), trackers (`--mlflow`, `--wandb`),
  retries and driver callback.
* `scheduler = "asha"`: Tune's `ASHAScheduler` on the per-epoch `quick_psnr`; a trial it stops
  is committed with `status = stopped` (its history kept, metrics NaN) and told to Optuna as
  pruned. Every other early end (Ctrl-C, a killed driver) leaves the trial's checkpoint.
* Resume: every run is a new Tune experiment. The search's finished trials, read back from the
  trial files, are added to Optuna as completed (or pruned, or failed) trials and count towards
  `num_samples`; a sampled configuration that already finished is never trained again (the
  worker reports its recorded objective instead); a trial interrupted mid-training is sampled
  first again (its params from `search/<name>/started/<trial_id>.json`, `StudyDir.
  search_started`, written by the driver when the trial started) and resumes from its latest
  checkpoint.
* `confirm = K`: the K best completed configurations re-run with every seed of the study
  (`driver.run_ray`, like `ablate run`); `search/<name>/confirm.json` lists them so that
  `ablate table` shows them as rows beside the study's variants.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ray import tune

from ablate.orchestrate.cluster import connect, trial_resources
from ablate.orchestrate.driver import (Recorder, check_storage, experiment, experiment_name,
                                       fit_quietly, run_ray)
from ablate.orchestrate.lock import StudyLock
from ablate.orchestrate.preflight import (RunError, check_data, check_results,
                                          refused_leaves_nothing)
from ablate.orchestrate.progress import Progress
from ablate.orchestrate.run import start_study
from ablate.orchestrate.storage import Storage, resolve_storage
from ablate.orchestrate.study_files import completed_ids
from ablate.orchestrate.tracking import Tracking
from ablate.orchestrate.worker import job_of, train_job
from ablate.results.atomic import atomic_write_text
from ablate.results.layout import StudyDir
from ablate.results.search import (SearchRecord, SearchTrial, rank, search_trials,
                                   write_record)
from ablate.spec import Study, expand
from ablate.spec.config import TrialConfig
from ablate.spec.search import SearchConfig, decode, encode, sampled_trial

OBJECTIVE = "objective"  # the searcher's metric in Tune's results
ASHA_METRIC = "quick_psnr"  # what ASHA compares each epoch (higher is better)


@dataclass
class SearchSummary:
    study_root: Path
    name: str
    num_samples: int
    finished_before: int  # search trials finished in earlier runs
    ran: int = 0  # Tune trials this run (sampled)
    trials: list[SearchTrial] = field(default_factory=list)  # every finished one, best first
    failed: dict[str, str] = field(default_factory=dict)
    confirmed: list[str] = field(default_factory=list)  # trial ids of the confirm runs
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.failed:
            return 1
        return 130 if self.interrupted else 0


# ---------------------------------------------------------------------------------------------
# the worker
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What every search worker needs, pickled once by `tune.with_parameters`."""

    study: Study
    search: SearchConfig
    device: str
    known: dict  # trial_id → recorded objective (NaN: stopped, failed or no value)
    resume: dict  # trial_id → earlier runs' checkpoint directories, newest first
    work_root: str  # the study's work folder (swept by the next run)
    storage: str  # the storage URI those checkpoints are in (worker.job_of)


def trial_of(study: Study, search: SearchConfig, params: dict) -> TrialConfig:
    """The trial of Tune's sampled `params`, marked with the search."""
    cfg = sampled_trial(study, search, decode(search, params))
    return dataclasses.replace(cfg, search=search.name)


def objective_of(search: SearchConfig, rows: list[dict]) -> float:
    """The search's metric at its resolution in a trial's rows (NaN when absent)."""
    for row in rows:
        if int(row["resolution"]) == search.resolution:
            value = row.get(search.metric)
            return float(value) if value is not None else math.nan
    return math.nan


def _search_trainable(config: dict, ctx: _Context) -> None:
    cfg = trial_of(ctx.study, ctx.search, config)
    if cfg.trial_id in ctx.known:  # finished in an earlier run: never trained again
        value = ctx.known[cfg.trial_id]
        tune.report({"final": True, "reused": True, "epoch": 0,
                     OBJECTIVE: None if math.isnan(value) else value})
        return
    job = job_of(cfg, ctx.device, ctx.work_root, ctx.resume.get(cfg.trial_id, []), ctx.storage)

    def final(result):
        value = objective_of(ctx.search, result.rows)
        return {OBJECTIVE: None if math.isnan(value) else value}

    train_job(job, final)


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------


def _searcher(search: SearchConfig, finished: list[SearchTrial], interrupted: list[dict]):
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    class _Optuna(OptunaSearch):
        # per-epoch results carry no objective (it is measured once, after training): Optuna
        # hears only the final one
        def on_trial_result(self, trial_id, result):
            pass

    # a resumed search continues with its own stream of draws: seeded again with the seed
    # alone, the sampler would draw the finished configurations first once more
    seed = search.seed + len(finished)
    sampler = (optuna.samplers.RandomSampler(seed=seed) if search.algorithm == "random"
               else optuna.samplers.TPESampler(seed=seed))
    searcher = _Optuna(space=OptunaSearch.convert_search_space(tune_space(search)),
                       metric=OBJECTIVE, mode=search.mode,
                       sampler=sampler, points_to_evaluate=interrupted or None)
    for t in finished:  # resume: the finished trials, as Optuna would have recorded them
        params = encode(search, t.point)
        if t.status == "completed" and not math.isnan(t.value):
            searcher.add_evaluated_point(params, t.value)
        elif t.status == "stopped":
            searcher.add_evaluated_point(params, None, pruned=True)
        else:
            searcher.add_evaluated_point(params, None, error=True)
    return searcher, ConcurrencyLimiter


def tune_space(search: SearchConfig) -> dict:
    """The `[search.space]` as Tune domains (choices by label: Optuna takes scalars only)."""
    out = {}
    for key, d in search.space:
        if d.kind == "choice":
            out[key] = tune.choice(list(d.labels()))
        elif d.kind == "uniform":
            out[key] = tune.uniform(*d.values)
        elif d.kind == "loguniform":
            out[key] = tune.loguniform(*d.values)
        else:
            out[key] = tune.randint(d.values[0], d.values[1] + 1)
    return out


class _StopRecorder:
    """Remembers which trials ASHA stopped (a stop is otherwise a plain TERMINATED trial)."""

    def __init__(self):
        self.stopped: dict[str, int] = {}


def _asha(search: SearchConfig, epochs: int, record: _StopRecorder):
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class _ASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            decision = super().on_trial_result(tune_controller, trial, result)
            if decision == TrialScheduler.STOP and not result.get("final"):
                record.stopped[trial.trial_id] = int(result.get("epoch", 0))
            return decision

    # stop_last_trials=False: reaching the last epoch does not by itself stop a trial (its
    #   evaluation follows); a rung at the last epoch (grace_period >= epochs) may still
    #   stop it there, before its evaluation
    return _ASHA(time_attr="epoch", metric=ASHA_METRIC, mode="max", max_t=epochs,
                 grace_period=min(search.grace_period, epochs),
                 reduction_factor=search.reduction_factor, stop_last_trials=False)


def _interrupted_points(study_dir: StudyDir, store: Storage, search: SearchConfig,
                        finished: set[str], checkpoints: dict) -> list[dict]:
    """Params of this search's trials that have a checkpoint but no trial file (interrupted):
    from search/<name>/started/, and from Tune's params.json where the storage is a local
    directory (in an object store, the driver's own record is the one read)."""
    out, seen = [], set()
    recorded = sorted(study_dir.search_started(search.name).glob("*.json"))
    storage = Path(store.path)
    if store.local and storage.is_dir():
        recorded += sorted(storage.glob(f"search-{search.name}-*/*/params.json"))
    for params_file in recorded:
        tid = params_file.stem if params_file.parent.name == "started" else \
            params_file.parent.name
        if tid in finished or tid in seen or tid not in checkpoints:
            continue
        try:
            params = json.loads(params_file.read_text())
            decode(search, params)  # still in the space?
        except (OSError, ValueError, KeyError, IndexError):
            continue
        seen.add(tid)
        out.append({k: params[k] for k, _ in search.space})
    return out


def run_search(study: Study, results: str | Path = "results", *, address: str | None = None,
               confirm: int = 0, storage: str | None = None, tracking: Tracking | None = None,
               progress_stream=None, live: bool | None = None) -> SearchSummary:
    """Sample `study.search` until num_samples trials of it finished; then, with `confirm`,
    re-run the best `confirm` configurations with every seed of the study. `storage` and
    `tracking` as for `ablate run` (`--storage`, `--mlflow`, `--wandb`)."""
    search: SearchConfig | None = study.search
    if search is None:
        raise RunError(f"{study.path}: no [search] table; add one (README, \"Searching\") to "
                       "say what to optimise over which keys")
    study_dir = StudyDir.of(results, study.name)
    if tracking is not None and (tracking.mlflow or tracking.wandb):
        tracking.check()
    with refused_leaves_nothing(study_dir.root):  # a refusal leaves no folder behind
        check_results(study_dir.root)
        with StudyLock(study_dir):
            finished = [t for t in search_trials(study_dir, search)]
            summary = SearchSummary(study_dir.root, search.name, search.num_samples, len(finished))
            remaining = max(0, search.num_samples - len(finished))
            # every check before anything is written: a refused search leaves the study as it was
            cluster = None
            check_storage(storage, study_dir.ray_storage)
            if remaining:
                check_data([sampled_trial(study, search, _first_point(search))])
                cluster = connect(address)
                trial_resources(study.resources, cluster, lambda note: None)
            start_study(study_dir, study, expand(study))
            write_record(study_dir, record_of(search))
            with Progress(total=remaining, skipped=len(finished), stream=progress_stream,
                          live=live) as progress:
                progress.note(f"{study.name}: search {search.name!r} ({search.algorithm}, "
                              f"{search.metric} at {search.resolution}, {search.mode}), "
                              f"{len(finished)}/{search.num_samples} sampled trials finished, "
                              f"{remaining} to run → {study_dir.root}")
                if remaining:
                    summary.ran, summary.failed, summary.interrupted = _tune(
                        study, search, study_dir, cluster, progress, finished, remaining,
                        storage=storage, tracking=tracking)
                summary.trials = rank(search, search_trials(study_dir, search))
                if confirm and not summary.interrupted:
                    best = [t for t in summary.trials if t.status == "completed"
                            and not math.isnan(t.value)][:confirm]
                    trials = confirm_trials(study, search, best)
                    write_confirm(study_dir, search, best, trials)

                    done = completed_ids(study_dir)
                    pending = [t for t in trials if t.trial_id not in done]
                    progress.note(f"confirm: the best {len(best)} configuration(s) × "
                                  f"{len(study.study.seeds)} seeds: {len(trials) - len(pending)} "
                                  f"done, {len(pending)} to run")
                    if pending:
                        cluster = cluster or connect(address)
                        failed, _ = run_ray(pending, study_dir, study.resources, cluster, progress,
                                            storage=storage, tracking=tracking)
                        summary.failed.update(failed)
                    summary.confirmed = [t.trial_id for t in trials]
        return summary


def record_of(search: SearchConfig) -> SearchRecord:
    return SearchRecord(search.name, search.variant, search.metric, search.resolution,
                        search.mode, search.num_samples, search.space)


def _first_point(search: SearchConfig):
    return tuple((k, d.values[0]) for k, d in search.space)


def _tune(study: Study, search: SearchConfig, study_dir: StudyDir, cluster, progress,
          finished: list[SearchTrial], remaining: int, *, storage: str | None = None,
          tracking: Tracking | None = None):
    trial_res = trial_resources(study.resources, cluster, progress.note)
    device = "cuda" if trial_res[1] > 0 else "cpu"
    store = resolve_storage(storage, study_dir.ray_storage)
    checkpoints = store.all_checkpoints()
    done_ids = {t.trial_id for t in finished}
    interrupted = _interrupted_points(study_dir, store, search, done_ids, checkpoints)
    if interrupted:
        progress.note(f"resuming {len(interrupted)} interrupted trial(s) of the search first")
    searcher, limiter = _searcher(search, finished, interrupted)
    max_conc = search.max_concurrent or study.resources.max_concurrent
    record = _StopRecorder()
    scheduler = _asha(search, study.train.epochs, record) if search.scheduler == "asha" else None
    ctx = _Context(study, search, device,
                   known={t.trial_id: t.value for t in finished},
                   resume={tid: [str(d) for _, d in found] for tid, found in checkpoints.items()},
                   work_root=str(study_dir.work_dir.resolve()), storage=store.uri)
    recorder = _SearchRecorder(study, search, record, study_dir, progress, device)
    recorder.search_known = set(ctx.known)

    def tid(t) -> str:
        return trial_of(study, search, t.config).trial_id

    tuner = experiment(
        tune.with_parameters(_search_trainable, ctx=ctx), actor="AblateSearchTrial",
        name=experiment_name(f"search-{search.name}"), trial_res=trial_res,
        resources=study.resources, store=store, recorder=recorder, study=study.name,
        tracking=tracking,  # param_space: none, the searcher holds the space
        search_alg=limiter(searcher, max_concurrent=max_conc) if max_conc else searcher,
        scheduler=scheduler, num_samples=remaining, trial_dirname_creator=tid,
        trial_name_creator=lambda t: f"{search.name}-{tid(t)}")
    # the objective comes with the last report only, quick_psnr (ASHA's) with the epochs' only
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    fit_quietly(tuner, study_dir)
    return len(recorder.started), recorder.failures, bool(recorder.started - recorder.ended)


class _SearchRecorder(Recorder):
    """`driver.Recorder` for sampled trials: the config comes from the sampled params; a
    reused trial commits nothing; a trial ASHA stopped is committed as `stopped`."""

    def __init__(self, study, search, record: _StopRecorder, study_dir: StudyDir,
                 progress: Progress, device: str):
        super().__init__(self._config_of, study_dir, progress, device)
        self.study, self.search, self.record = study, search, record
        self.by_tid: dict[str, TrialConfig] = {}
        self.search_known: set[str] = set()  # finished in earlier runs (reused, not trained)
        self.started: set[str] = set()
        self.ended: set[str] = set()

    def _config_of(self, trial) -> TrialConfig:
        if trial.trial_id not in self.by_tid:
            self.by_tid[trial.trial_id] = trial_of(self.study, self.search, trial.config)
        return self.by_tid[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.add(trial.trial_id)
        cfg = self.config_of(trial)
        if cfg.trial_id not in self.search_known:  # its params, for a resume after a kill
            path = self.study_dir.search_started(self.search.name) / f"{cfg.trial_id}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps({k: trial.config[k] for k, _ in self.search.space}))
        super().on_trial_start(iteration, trials, trial, **info)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended.add(trial.trial_id)
        super().on_trial_error(iteration, trials, trial, **info)

    def on_trial_complete(self, iteration, trials, trial, **info):
        cfg = self.config_of(trial)
        last = trial.last_result or {}
        if last.get("final") or trial.trial_id in self.record.stopped:
            self.ended.add(trial.trial_id)
        if last.get("reused"):
            self.study_dir.running(cfg.trial_id).unlink(missing_ok=True)
            self.progress.note(f"{cfg.trial_id} ({cfg.grid_key()}) finished in an earlier run: "
                               "its recorded result is reused")
            self.progress.finish(cfg, True)
            return
        if trial.trial_id in self.record.stopped:
            epoch = self.record.stopped[trial.trial_id]
            why = (f"stopped by ASHA after epoch {epoch}: {ASHA_METRIC} "
                   f"{last.get(ASHA_METRIC, math.nan):.2f} dB below its rung's cutoff")
            self.commit_unfinished(trial, cfg, why, status="stopped")
            self.progress.note(f"{cfg.trial_id} ({cfg.grid_key()}) {why}")
            self.progress.finish(cfg, True)
            return
        super().on_trial_complete(iteration, trials, trial, **info)


# ---------------------------------------------------------------------------------------------
# ranking and confirmation
# ---------------------------------------------------------------------------------------------


def confirm_trials(study: Study, search: SearchConfig, best: list[SearchTrial]) -> list[TrialConfig]:
    """Every seed of the study for each of the `best` configurations (the search's own seed is
    the trial it sampled: same config, same id, not run again). Their `search` column reads
    "<name>:confirm", so that they never count as sampled trials."""
    out = []
    for t in best:
        for seed in study.study.seeds:
            cfg = sampled_trial(study, search, t.point, seed=seed)
            out.append(dataclasses.replace(cfg, search=f"{search.name}:confirm"))
    return out


def write_confirm(study_dir: StudyDir, search: SearchConfig, best: list[SearchTrial],
                  trials: list[TrialConfig]) -> Path:
    """search/<name>/confirm.json: the confirmed configurations, rank order, with their trials."""
    by_point: dict[str, list[str]] = {}
    for cfg in trials:
        by_point.setdefault(cfg.grid_key(), []).append(cfg.trial_id)
    doc = {"search": search.name, "variant": search.variant, "metric": search.metric,
           "resolution": search.resolution, "mode": search.mode,
           "configs": [{"rank": k, "point": t.grid, "objective": t.value,
                        "trial_ids": by_point.get(t.grid, [])}
                       for k, t in enumerate(best, start=1)]}
    path = study_dir.search_confirm(search.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
