"""What `ablate table` and `ablate report` can show (`--metric`) and how (`--format`).

Plain enums with no imports, so that the CLI lists the choices in `--help` without loading
the table code.
"""

from __future__ import annotations

from enum import Enum


class Metric(str, Enum):
    """A metric column of the trial rows that has a bicubic counterpart (`<metric>_bicubic`)."""

    psnr = "psnr"
    ssim = "ssim"
    psnr_y = "psnr_y"

    @property
    def label(self) -> str:
        return _LABELS[self.value]

    @property
    def decimals(self) -> int:
        return 4 if self is Metric.ssim else 2


_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM",
           "psnr_y": "Y-PSNR (dB; BT.601 luma, border shaved)"}


class Format(str, Enum):
    text = "text"  # rich table for the terminal
    markdown = "markdown"
    csv = "csv"  # long ("tidy"): one record per study × row × resolution
    json = "json"
    latex = "latex"
