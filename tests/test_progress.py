"""Live progress: plain lines off a terminal, a redrawn bar and trial table on one."""

from __future__ import annotations

import io
import re

from ablate.orchestrate.progress import Progress
from ablate.spec import expand, load_study


def test_plain_lines_and_live_table(tiny_study):
    a, b = expand(load_study(tiny_study))[:2]
    plain = io.StringIO()
    with Progress(total=2, skipped=1, stream=plain, live=False) as p:
        p.start(a)
        p.epoch(a, 1, 0.01234, 21.5, 250.0)
        p.finish(a, True, rows=[{"resolution": 16, "psnr": 25.0, "verdict": "n/a"},
                                {"resolution": 32, "psnr": 20.1, "verdict": "resampling"}])
        p.start(b)
        p.finish(b, False, "boom")
    out = plain.getvalue()
    lines = out.splitlines()
    # every plain line carries the trial counter and the study's ETA
    assert all(re.match(r"\[\d/2 ETA [^\]]+\] ", ln) for ln in lines), out
    assert lines[0].startswith("[0/2 ETA —] start    plain seed 0")  # no epoch yet: no ETA
    assert re.search(rf"\[0/2 ETA \d+s\] epoch    plain seed 0 \({a.trial_id}\) 1/2 loss "
                     r"0\.01234 quick PSNR@16 21\.50 dB 250 img/s \(trial \d+s, ETA \d+s\)",
                     out), out
    assert "nan" not in out
    # a finished trial shows its final figure and verdict, not a bare "done"
    assert re.search(r"\[1/2 ETA \S+\] done     plain seed 0 .*: PSNR@32 20\.10 dB resampling",
                     out), out
    assert f"[2/2 ETA 0s] FAILED   {b.variant} seed {b.seed}" in out and "boom" in out
    assert p.done == 1 and p.failed == 1 and p.eta() == 0.0

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    with Progress(total=2, stream=tty, trials=[a, b]) as p:
        assert p.live
        p.start(a)
        p.epoch(a, 2, 0.5, 12.0, 99.0)
        from rich.console import Console

        def screen():
            c = Console(file=io.StringIO(), width=200)
            c.print(p._render())
            return c.file.getvalue()

        text = screen()
        assert "0/2 trials" in text and a.trial_id in text and "2/2" in text and "12.00" in text
        assert "RUNNING" in text and "quick PSNR@16" in text and "8 held-out images" in text
        assert "nan" not in text
        p.finish(a, True, rows=[{"resolution": 32, "psnr": 19.5, "verdict": "unfit"}])
        assert p.eta() is not None  # one done, one to go: an ETA exists
        text = screen()
        # the finished trial stays, with its result; the other one is listed as pending
        assert "DONE" in text and "PSNR@32 19.50 dB unfit" in text
        assert "━" * 10 in text and "1/2 trials" in text  # the bar stays drawn once one finished
        assert "PENDING" in text and b.trial_id in text
