"""Live progress: plain lines off a terminal, a redrawn bar and trial table on one."""

from __future__ import annotations

import io

from ablate.orchestrate.progress import Progress
from ablate.spec import expand, load_study


def test_plain_lines_and_live_table(tiny_study):
    a, b = expand(load_study(tiny_study))[:2]
    plain = io.StringIO()
    with Progress(total=2, skipped=1, stream=plain, live=False) as p:
        p.start(a)
        p.epoch(a, 1, 0.01234, 21.5, 250.0)
        p.finish(a, True)
        p.start(b)
        p.finish(b, False, "boom")
    out = plain.getvalue()
    assert f"epoch    plain seed 0 ({a.trial_id}) 1/2 loss 0.01234 PSNR 21.50 dB 250 img/s" in out
    assert "FAILED" in out and "boom" in out
    assert p.done == 1 and p.failed == 1 and p.eta() == 0.0

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    with Progress(total=2, stream=tty) as p:
        assert p.live
        p.start(a)
        p.epoch(a, 2, 0.5, 12.0, 99.0)
        shown = p._render()
        from rich.console import Console

        c = Console(file=io.StringIO(), width=120)
        c.print(shown)
        text = c.file.getvalue()
        assert "0/2 trials" in text and a.trial_id in text and "2/2" in text and "12.00" in text
        p.finish(a, True)
        assert p.eta() is not None  # one done, one to go: an ETA exists
