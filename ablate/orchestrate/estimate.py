"""How long a study's pending trials would train on this machine's CPUs, measured, so that
`ablate run` warns before a GPU-sized study starts on a laptop.

    est = estimate(pending, threads=1)          # None where nothing can be measured
    est.hours, est.img_per_s, est.line()

One training step (forward, backward, AdamW) of the first pending trial's model, at its batch
size and input resolution, is timed after one warm-up step, with `threads` torch threads (a
trial's `cpus_per_trial`); every trial is assumed to run at that speed, `slots` of them at a
time: hours = Σ epochs × train_samples / img/s / slots / 3600. Queries at higher training
resolutions (multi-scale) cost more, so the figure is a lower bound. A step that takes more
than a few seconds is timed once, without warm-up (that is slow enough to say so).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ablate.spec.config import TrialConfig

ESTIMATE_FROM_HOURS = 1.0  # `ablate run` says the estimate from this long on (the live
#   display's ETA covers shorter runs once the first epochs are in)
FAR_TOO_BIG_HOURS = 12.0  # beyond this `ablate run` warns that the machine is the wrong one


@dataclass(frozen=True)
class Estimate:
    hours: float
    img_per_s: float
    trials: int
    slots: int

    @property
    def far_too_big(self) -> bool:
        return self.hours > FAR_TOO_BIG_HOURS

    def line(self) -> str:
        when = (f"{self.hours:.0f} h" if self.hours >= 10 else f"{self.hours:.1f} h"
                if self.hours >= 1 else f"{self.hours * 60:.0f} min")
        text = (f"estimate: ≥ {when} on this machine's CPUs ({self.trials} trial(s), "
                f"{self.slots} at a time, {self.img_per_s:.3g} img/s per trial measured on "
                "one training step at the input resolution)")
        if self.far_too_big:
            text = ("warning: " + text + ": far too big for this machine. Run it on GPU "
                    "nodes (README \"GPU nodes\", \"Ray clusters\") or a CPU-sized study "
                    "(studies/jitter_vs_multiscale_cpu.toml); Ctrl-C stops it and keeps "
                    "what finished")
        return text


def measure_img_per_s(cfg: TrialConfig, threads: int = 1, slow_s: float = 3.0) -> float:
    """Training images per second of `cfg`'s model on the CPU (see the module docstring)."""
    import torch  # ~1 s: only where an estimate is asked for

    from ablate.data.coords import make_coord
    from ablate.model.inr import build_model

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        gen = torch.Generator().manual_seed(0)
        model = build_model(cfg.model, cfg.data.input_size, "cpu")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        b, s = cfg.train.batch_size, cfg.data.input_size
        img = torch.rand(b, 3, s, s, generator=gen)
        coords = make_coord(s).expand(b, -1, -1)
        target = torch.rand(b, s * s, 3, generator=gen)

        def step() -> float:
            t0 = time.perf_counter()
            loss = torch.nn.functional.mse_loss(model(img, coords, s), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return time.perf_counter() - t0

        first = step()
        seconds = first if first > slow_s else step()
        return b / seconds
    finally:
        torch.set_num_threads(before)


def estimate(pending: list[TrialConfig], threads: int = 1, slots: int = 1) -> Estimate | None:
    if not pending:
        return None
    rate = measure_img_per_s(pending[0], threads)
    images = sum(t.train.epochs * t.data.train_samples for t in pending)
    slots = max(1, min(slots, len(pending)))
    return Estimate(images / rate / slots / 3600.0, rate, len(pending), slots)
