"""Evaluate a model on the test set at every eval resolution, beside bicubic.

    result = evaluate(render, test, cfg.data)   # render(inputs (b,3,s,s), r) -> (b,3,r,r)
    rows = result.rows                          # one dict per r: schema.TRIAL_COLUMNS metrics
    result.images                               # one dict per (r, held-out crop): IMAGE_COLUMNS

Nothing here touches files: the trial's files are staged and committed by
``ablate.results.commit``.

Per resolution r (s = input size):
  no ground truth (r above the HR side, e.g. CIFAR at 64): every metric NaN, verdict "n/a" —
      missing, never faked; the model is not even run.
  r < s: PSNR/Y-PSNR/SSIM of the model against the truth; everything else NaN, verdict "n/a".
  r = s: the same, and gate 1's figures (ablate.metrics.verdict): psnr_lr_consistency (here
      the PSNR against the input itself), psnr_lr_floor (the input's half-resolution copy),
      lr_margin = fit_margin; nothing to upsample, so the bicubic and band metrics are NaN,
      and the verdict is "unfit" or "n/a".
  r > s: model and bicubic PSNR, Y-PSNR (BT.601 luma, border of ceil(r/s) px shaved, as SR
      papers compute it) and SSIM — the row holds the means of the per-image values — gate 2's
      figures (the prediction downsampled back to s: psnr_lr_consistency, lr_margin), the band
      metrics and the verdict of ablate.metrics.verdict, and the radially averaged spectra of
      truth, bicubic and model for the plots.
  Every row carries `fit_margin`, decided once at r = s (the model is rendered at s for it even
  when s is not an eval resolution): an unfit model is `unfit` at every resolution.
The per-image values themselves are kept (`EvalResult.images`, one row per resolution × crop,
with the crop's photo) for the table's intervals over held-out images.
Predictions are clamped to [0, 1] before any metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ablate.data.dataset import TestData
from ablate.metrics.image import psnr, psnr_y, ssim, y_shave
from ablate.imaging import bicubic_upsample
from ablate.metrics.spectrum import band_sums, pool, radial_spectrum
from ablate.metrics.verdict import lr_consistency, lr_floor, margin_lower_bound, verdict
from ablate.results.rows import empty_metrics
from ablate.schema import IMAGE_METRICS
from ablate.spec.config import DataConfig

Render = Callable[[Tensor, int], Tensor]


@dataclass
class EvalResult:
    rows: list[dict]  # one per eval resolution, keys schema.METRIC_KEYS, in
    #   cfg.eval_resolutions order
    spectra: list[dict]  # schema.SPECTRA_COLUMNS rows
    samples: dict[str, np.ndarray] = field(default_factory=dict)  # input, bicubic, prediction,
    #   truth: float32 (n, 3, ·, ·) at `sample_resolution`; empty when no resolution has truth
    sample_resolution: int | None = None
    images: list[dict] = field(default_factory=list)  # schema.IMAGE_COLUMNS rows, less trial_id

    def row(self, r: int) -> dict:
        return next(row for row in self.rows if row["resolution"] == r)


@torch.no_grad()
def _render_all(render: Render, inputs: Tensor, r: int, batch_size: int) -> Tensor:
    outs = []
    for i in range(0, inputs.shape[0], batch_size):
        x = inputs[i : i + batch_size]
        y = render(x, r)
        if tuple(y.shape) != (x.shape[0], 3, r, r):
            raise ValueError(
                f"render returned {tuple(y.shape)} for {x.shape[0]} images at {r}, "
                f"expected {(x.shape[0], 3, r, r)}"
            )
        outs.append(y.detach().float().clamp(0.0, 1.0).to(inputs.device))
    return torch.cat(outs)


def _spectra_rows(r: int, kind: str, imgs: Tensor) -> list[dict]:
    freqs, power = radial_spectrum(imgs)
    return [
        {"resolution": int(r), "kind": kind, "frequency": float(f), "power": float(p)}
        for f, p in zip(freqs, power)
    ]


@torch.no_grad()
def evaluate(
    render: Render, test: TestData, cfg: DataConfig, n_samples: int = 4, batch_size: int = 16
) -> EvalResult:
    """Metrics of `render` on `test` at each of `cfg.eval_resolutions` (see the module)."""
    s = cfg.input_size
    if test.input_size != s:
        raise ValueError(f"test inputs are {test.input_size}×{test.input_size}, config says {s}")
    rows, spectra, predictions, images = [], [], {}, []
    with_truth = [r for r in cfg.eval_resolutions if test.has_truth(r)]
    top = max(with_truth) if with_truth else None
    floor = lr_floor(test.inputs)  # (N,) the gates' reference, per image (verdict.py)
    photos = test.photos or None
    preds: dict[int, Tensor] = {}

    def predict(r: int) -> Tensor:
        if r not in preds:
            preds[r] = _render_all(render, test.inputs, r, batch_size)
        return preds[r]

    def margin(pred: Tensor) -> tuple[Tensor, float]:
        lr = lr_consistency(pred, test.inputs)  # (N,)
        return lr, margin_lower_bound((lr - floor).tolist(), photos)

    _, fit_margin = margin(predict(s))  # gate 1, decided once, at the input

    for r in cfg.eval_resolutions:
        row = empty_metrics(r)
        rows.append(row)
        if not test.has_truth(r):
            continue
        truth = test.truth(r)
        pred = predict(r)
        if r == top:
            predictions[r] = pred[:n_samples]
        shave = y_shave(r, s)
        per = {"psnr": psnr(pred, truth), "psnr_y": psnr_y(pred, truth, shave),
               "ssim": ssim(pred, truth)}
        if r > s:
            bic = bicubic_upsample(test.inputs, r)
            per.update(psnr_bicubic=psnr(bic, truth), psnr_y_bicubic=psnr_y(bic, truth, shave),
                       ssim_bicubic=ssim(bic, truth))
        row["fit_margin"] = fit_margin
        if r >= s:
            lr, row["lr_margin"] = margin(pred)
            per.update(psnr_lr_consistency=lr, psnr_lr_floor=floor)
        if r > s:
            sums = band_sums(pred, bic, truth, s)
            per.update(sums)
            row.update(pool({k: v.cpu().numpy() for k, v in sums.items()}))
        for k, v in per.items():
            if k in row:  # the band sums are per image only
                row[k] = float(v.mean())
        images += _image_rows(r, test, {k: v.tolist() for k, v in per.items()})
        if r < s:
            continue
        row["verdict"] = verdict(
            row["band_error_ratio"], row["hf_energy_ratio"], row["band_coherence"],
            row["band_coherence_bicubic"], fit_margin=row["fit_margin"],
            lr_margin=row["lr_margin"],
        )
        if r == s:
            continue
        for kind, imgs in (("truth", truth), ("bicubic", bic), ("model", pred)):
            spectra += _spectra_rows(r, kind, imgs)
        preds.pop(r, None)  # the top resolution's samples are kept in `predictions`

    samples = {}
    if top is not None:
        k = min(n_samples, len(test))
        samples = {
            "input": test.inputs[:k],
            "bicubic": bicubic_upsample(test.inputs[:k], top),
            "prediction": predictions[top][:k],
            "truth": test.truth(top)[:k],
        }
        samples = {name: v.float().cpu().numpy() for name, v in samples.items()}
    return EvalResult(rows=rows, spectra=spectra, samples=samples, sample_resolution=top,
                      images=images)


def _image_rows(r: int, test: TestData, per: dict[str, list[float]]) -> list[dict]:
    """One row per held-out crop at resolution r (bicubic metrics NaN where not computed)."""
    photos = test.photos or [""] * len(test)
    return [{"resolution": int(r), "image": i, "photo": photos[i],
             **{k: per[k][i] if k in per else math.nan for k in IMAGE_METRICS}}
            for i in range(len(test))]
