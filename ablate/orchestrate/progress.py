"""Live progress of a study in the terminal.

On a TTY (rich): an overall bar (trials finished / to run, elapsed, ETA) over a table like
Ray Tune's: every trial of the run, pending, running or finished, with its status, epoch,
elapsed time and ETA, loss, quick PSNR and img/s while it trains, and its final PSNR and
verdict once committed. Elapsed times and ETAs tick between epoch reports (the view is redrawn
twice a second). Elsewhere (CI, a pipe, `tee`): plain lines, one per start, epoch and finished
trial, each beginning with `[k/N]` (trials finished / to run) and the study's ETA.

The ETA counts epochs: (epochs left in the run) / (epochs finished per second so far), so it
exists from the first epoch report on, and follows concurrency as it is.

"quick PSNR" is what a trial reports each epoch: PSNR at the input size on the first
QUICK_PSNR_IMAGES held-out images (ablate/schema.py), a training signal only; the
table's figures come from the full evaluation at the end.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

from ablate.schema import QUICK_PSNR_IMAGES
from ablate.spec.config import TrialConfig


@dataclass
class _Trial:
    cfg: TrialConfig
    status: str = "PENDING"  # PENDING | RUNNING | DONE | FAILED
    epoch: int = 0
    loss: float | None = None
    psnr: float | None = None
    img_per_s: float | None = None
    started: float | None = None
    ended: float | None = None
    last_epoch_at: float | None = None
    first_epoch: int = 0  # epochs already done when it (re)started here (resumed)
    final: str = ""  # finished: its final PSNR and verdict, or its error

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended or now) - self.started

    def eta(self, now: float) -> float | None:
        """Seconds to this trial's end, from its own epoch rate (None before one epoch)."""
        done = self.epoch - self.first_epoch
        if self.status != "RUNNING" or done <= 0 or self.started is None:
            return None
        per_epoch = (self.last_epoch_at - self.started) / done
        left = (self.cfg.train.epochs - self.epoch) * per_epoch - (now - self.last_epoch_at)
        return max(0.0, left)


def _dur(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _num(x: float | None, spec: str) -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


def final_summary(rows: list[dict] | None) -> str:
    """"PSNR@64 21.62 dB hallucination": the trial's figure at its top eval resolution."""
    rows = [r for r in rows or [] if r.get("resolution") is not None]
    if not rows:
        return ""
    top = max(rows, key=lambda r: r["resolution"])
    psnr = top.get("psnr")
    verdict = top.get("verdict") or ""
    return (f"PSNR@{top['resolution']} {_num(psnr, '.2f')} dB"
            + (f" {verdict}" if verdict and verdict != "n/a" else ""))


class Progress:
    def __init__(self, total: int, skipped: int = 0, stream=None, live: bool | None = None,
                 trials: list[TrialConfig] | None = None):
        self.stream = stream or sys.stdout
        self.total, self.skipped = total, skipped
        self.done = self.failed = 0
        self.trials: dict[str, _Trial] = {t.trial_id: _Trial(t) for t in trials or []}
        self.t0 = time.monotonic()
        self.live = self.stream.isatty() if live is None else live
        self._live = None
        self.stopping_since: float | None = None  # when Ctrl-C asked the run to stop

    @property
    def running(self) -> dict[str, _Trial]:
        return {k: t for k, t in self.trials.items() if t.status == "RUNNING"}

    # ---- events -------------------------------------------------------------------------
    def __enter__(self):
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=self.stream), get_renderable=self._render,
                              refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(*exc)

    def _get(self, cfg: TrialConfig) -> _Trial:
        return self.trials.setdefault(cfg.trial_id, _Trial(cfg))

    def start(self, cfg: TrialConfig) -> None:
        t = self._get(cfg)
        now = time.monotonic()
        t.status, t.started, t.ended, t.last_epoch_at = "RUNNING", now, None, None
        t.first_epoch = t.epoch
        self._line(f"start    {self._name(cfg)}")

    def epoch(self, cfg: TrialConfig, epoch: int, loss: float, psnr: float, img_per_s: float) -> None:
        t = self._get(cfg)
        if t.started is None:
            t.status, t.started = "RUNNING", time.monotonic()
        if t.last_epoch_at is None:  # resumed: its first report here may be epoch k > 1
            t.first_epoch = min(t.first_epoch, epoch - 1) if t.first_epoch else epoch - 1
        t.epoch, t.loss, t.psnr, t.img_per_s = epoch, loss, psnr, img_per_s
        t.last_epoch_at = time.monotonic()
        self._line(f"epoch    {self._name(cfg)} {epoch}/{cfg.train.epochs} loss {loss:.5f} "
                   f"quick PSNR@{cfg.data.input_size} {psnr:.2f} dB {img_per_s:.0f} img/s"
                   f" (trial {_dur(t.elapsed(t.last_epoch_at))}, ETA {_dur(t.eta(t.last_epoch_at))})")

    def finish(self, cfg: TrialConfig, ok: bool, message: str = "",
               rows: list[dict] | None = None) -> None:
        t = self._get(cfg)
        t.status, t.ended = ("DONE" if ok else "FAILED"), time.monotonic()
        if t.started is None:
            t.started = t.ended
        if ok:
            self.done += 1
            t.final = final_summary(rows)
        else:
            self.failed += 1
            t.final = message
        text = t.final if ok else message
        self._line(f"{'done  ' if ok else 'FAILED'}   {self._name(cfg)}" + (f": {text}" if text else "")
                   + f" ({_dur(t.elapsed(t.ended))})", event=True)

    def stopping(self, message: str) -> None:
        """Ctrl-C (or SIGTERM) arrived: say so at once and show the run as stopping."""
        self.stopping_since = time.monotonic()
        self.note(message)

    def note(self, message: str) -> None:
        if self._live is not None:
            self._live.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=self.stream, flush=True)

    # ---- the ETA ------------------------------------------------------------------------
    def eta(self) -> float | None:
        """Seconds to the end of the run: epochs left / epochs finished per second (None
        before the first epoch report; 0 when every trial has finished)."""
        finished = self.done + self.failed
        if finished >= self.total:
            return 0.0
        now = time.monotonic()
        done_epochs = sum(t.epoch - t.first_epoch for t in self.trials.values())
        if done_epochs <= 0:
            return None
        known = {t.cfg.trial_id: t for t in self.trials.values()}
        left = sum(t.cfg.train.epochs - t.epoch for t in known.values()
                   if t.status in ("RUNNING", "PENDING"))
        unknown = self.total - len([t for t in known.values()])  # trials not announced yet
        if unknown > 0:
            per_trial = max(t.cfg.train.epochs for t in known.values())
            left += unknown * per_trial
        rate = done_epochs / max(1e-9, now - self.t0)
        return left / rate

    def counter(self) -> str:
        """"[k/N ETA 3m20s]": trials finished of those to run, and the study's ETA."""
        return f"[{self.done + self.failed}/{self.total} ETA {_dur(self.eta())}]"

    # ---- rendering ----------------------------------------------------------------------
    @staticmethod
    def _name(cfg: TrialConfig) -> str:
        return f"{cfg.variant} seed {cfg.seed}" + (f" [{cfg.grid_key()}]" if cfg.grid else "") \
            + f" ({cfg.trial_id})"

    def _line(self, text: str, event: bool = False) -> None:
        if self._live is not None:
            self._live.refresh()  # the table shows epochs; starts and ends also get a line
            if not text.startswith("epoch"):
                self._live.console.print(f"{self.counter()} {text}", markup=False,
                                         highlight=False)
        else:
            print(f"{self.counter()} {text}", file=self.stream, flush=True)

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        finished = self.done + self.failed
        head = Table.grid(padding=(0, 1))
        state = (f"STOPPING for {_dur(now - self.stopping_since)}: trials keep their "
                 "latest epoch checkpoint" if self.stopping_since is not None
                 else f"ETA {_dur(self.eta())}")
        head.add_row(
            ProgressBar(total=max(1, self.total), completed=finished, width=30),
            Text(f"{finished}/{self.total} trials ({self.failed} failed, {self.skipped} "
                 f"already done)  elapsed {_dur(now - self.t0)}  {state}"))
        size = {t.cfg.data.input_size for t in self.trials.values()}
        quick = f"quick PSNR@{size.pop()}" if len(size) == 1 else "quick PSNR"
        t = Table(box=None, show_header=True, pad_edge=False,
                  caption=f"{quick}: PSNR at the input size on {QUICK_PSNR_IMAGES} held-out "
                          "images each epoch (a training signal; the table's figures come from "
                          "the full evaluation)", caption_justify="left")
        for col, justify in (("trial", "left"), ("variant", "left"), ("seed", "right"),
                             ("status", "left"), ("epoch", "right"), ("elapsed", "right"),
                             ("ETA", "right"), ("loss", "right"), (quick, "right"),
                             ("img/s", "right"), ("result", "left")):
            t.add_column(col, justify=justify)
        order = {"RUNNING": 0, "PENDING": 1, "DONE": 2, "FAILED": 2}
        for tid, r in sorted(self.trials.items(), key=lambda kv: order[kv[1].status]):
            style = {"RUNNING": "bold", "PENDING": "dim", "FAILED": "red"}.get(r.status)
            t.add_row(tid, r.cfg.variant, str(r.cfg.seed), r.status,
                      f"{r.epoch}/{r.cfg.train.epochs}", _dur(r.elapsed(now)), _dur(r.eta(now)),
                      _num(r.loss, ".5f"), _num(r.psnr, ".2f"), _num(r.img_per_s, ".0f"),
                      Text(r.final), style=style)
        return Group(head, t)
