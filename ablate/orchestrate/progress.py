"""Live progress of a study in the terminal.

On a TTY: a line per running trial (variant, seed, epoch/epochs, loss, latest PSNR, img/s)
under an overall bar with ETA, redrawn in place (rich Live). Elsewhere (CI, a pipe, a log
file): plain lines, one per epoch and one per finished trial.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from ablate.spec.config import TrialConfig


@dataclass
class _Running:
    cfg: TrialConfig
    epoch: int = 0
    loss: float = float("nan")
    psnr: float = float("nan")
    img_per_s: float = float("nan")
    started: float = field(default_factory=time.monotonic)


class Progress:
    def __init__(self, total: int, skipped: int = 0, stream=None, live: bool | None = None):
        self.stream = stream or sys.stdout
        self.total, self.skipped = total, skipped
        self.done = self.failed = 0
        self.running: dict[str, _Running] = {}
        self.t0 = time.monotonic()
        self.live = self.stream.isatty() if live is None else live
        self._live = None

    # ---- events -------------------------------------------------------------------------
    def __enter__(self):
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(), console=Console(file=self.stream),
                              refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)

    def start(self, cfg: TrialConfig) -> None:
        self.running[cfg.trial_id] = _Running(cfg)
        self._line(f"start    {self._name(cfg)}")

    def epoch(self, cfg: TrialConfig, epoch: int, loss: float, psnr: float, img_per_s: float) -> None:
        r = self.running.setdefault(cfg.trial_id, _Running(cfg))
        r.epoch, r.loss, r.psnr, r.img_per_s = epoch, loss, psnr, img_per_s
        self._line(f"epoch    {self._name(cfg)} {epoch}/{cfg.train.epochs} loss {loss:.5f} "
                   f"PSNR {psnr:.2f} dB {img_per_s:.0f} img/s")

    def finish(self, cfg: TrialConfig, ok: bool, message: str = "") -> None:
        self.running.pop(cfg.trial_id, None)
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self._line(f"{'done  ' if ok else 'FAILED'}   {self._name(cfg)}" + (f": {message}" if message else ""))

    def note(self, message: str) -> None:
        if self._live is not None:
            self._live.console.print(message)
        else:
            print(message, file=self.stream, flush=True)

    # ---- rendering ----------------------------------------------------------------------
    @staticmethod
    def _name(cfg: TrialConfig) -> str:
        return f"{cfg.variant} seed {cfg.seed}" + (f" [{cfg.grid_key()}]" if cfg.grid else "") \
            + f" ({cfg.trial_id})"

    def _line(self, text: str) -> None:
        if self._live is not None:
            self._live.update(self._render())
            if not text.startswith("epoch"):
                self._live.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def eta(self) -> float | None:
        finished = self.done + self.failed
        remaining = self.total - finished
        elapsed = time.monotonic() - self.t0
        if finished == 0 or remaining <= 0:
            return None if remaining > 0 else 0.0
        return elapsed / finished * remaining

    def _render(self):
        from rich.console import Group
        from rich.table import Table

        finished = self.done + self.failed
        width = 30
        filled = int(width * finished / max(1, self.total))
        eta = self.eta()
        bar = (f"[{'#' * filled}{'.' * (width - filled)}] {finished}/{self.total} trials"
               f" ({self.failed} failed, {self.skipped} already done)"
               f"  elapsed {time.monotonic() - self.t0:.0f}s"
               + (f"  ETA {eta:.0f}s" if eta is not None else ""))
        t = Table(box=None, show_header=True, pad_edge=False)
        for col in ("trial", "variant", "seed", "epoch", "loss", "PSNR dB", "img/s"):
            t.add_column(col)
        for tid, r in self.running.items():
            t.add_row(tid, r.cfg.variant, str(r.cfg.seed), f"{r.epoch}/{r.cfg.train.epochs}",
                      f"{r.loss:.5f}", f"{r.psnr:.2f}", f"{r.img_per_s:.0f}")
        return Group(bar, t)
