"""What a study's data are: `ablate data STUDY.toml`.

    facts = describe_study(load_study("studies/quickstart.toml"))   # one DataFacts per data config
    facts[0].resolutions[1].psnr_y_bicubic

For each distinct data config among a study's trials (variants or grid points may change
`[data]`), the same data the trials build (`build_data`, on the CPU):
  - training: the photos kept, the odds that a crop comes from each (`train_sampling`), the
    share of each photo's crop positions that pass `min_texture`, photos left out;
  - held out: its photos and how many non-overlapping crops each gives;
  - per eval resolution r: mean bicubic PSNR and Y-PSNR (SR papers' convention: BT.601 luma,
    ceil(r / input) px shaved) of the held-out crops upsampled from the input — r above the
    input size only — and the fraction of the ground truth's spectral energy above the
    input's Nyquist (max(|fy|, |fx|) > input/2 cycles/image; the band the verdict studies),
    pooled over crops and channels with the windowed spectra of `ablate.metrics.spectrum`.
  - the fitness gate's floor (`ablate.metrics.verdict`): mean PSNR of the held-out inputs'
    half-resolution copies against the inputs; a trial whose PSNR at its input does not clear
    it (the lower end of the 95 % interval over held-out photos) is `unfit`.
Resolutions without ground truth (CIFAR-10 above 32) are None.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

from ablate.data.dataset import build_data
from ablate.data.sources import load_source
from ablate.imaging import bicubic_upsample
from ablate.metrics.image import psnr, psnr_y, y_shave
from ablate.metrics.spectrum import band_mask, spectrum
from ablate.metrics.verdict import lr_floor
from ablate.results.json_safe import json_safe
from ablate.spec.config import DataConfig, Study, TrialConfig
from ablate.spec.expand import expand
from ablate.spec.source import resolve_prescale, resolved_data


@dataclass
class ResolutionFacts:
    resolution: int
    psnr_bicubic: float | None  # mean over held-out crops, dB; None at r ≤ input or no truth
    psnr_y_bicubic: float | None  # the same in Y-PSNR (luma, border shaved)
    energy_above_nyquist: float | None  # ground truth's energy share above input Nyquist


@dataclass
class DataFacts:
    source: str
    prescale: float
    hr_size: int  # HR side actually used (CIFAR-10: 32)
    input_size: int
    train_sampling: str
    min_texture: float
    train_photos: list[str]
    train_odds: list[float]  # per training photo: P(a crop comes from it)
    train_usable: list[float]  # per training photo: share of crop positions kept
    train_left_out: list[str]  # photos with no crop of enough texture
    skipped: int  # photos smaller than the HR side
    test_crops: int
    test_photos: dict[str, int]  # held-out photo → crops taken from it
    resolutions: list[ResolutionFacts]
    fit_floor: float  # the fitness gate's threshold on these inputs (psnr_lr_floor), dB
    variants: list[str] = field(default_factory=list)  # the variants that use this config
    description: str = ""

    def as_dict(self) -> dict:
        return json_safe(asdict(self))


def band_energy_fraction(imgs, input_size: int) -> float:
    """Share of the (mean-subtracted, Hann-windowed) spectral energy of (N, C, r, r) images in
    the bins above the input's Nyquist, pooled over images and channels; NaN for flat images."""
    power = spectrum(imgs).abs().pow(2)
    total = float(power.sum())
    if total <= 0:
        return math.nan
    return float(power[..., band_mask(imgs.shape[-1], input_size, imgs.device)].sum()) / total


def describe_data(cfg: DataConfig, *, photos=None) -> DataFacts:
    """The facts of one data config (`cfg.source` already resolved to an absolute path)."""
    prescale = resolve_prescale(cfg.source, cfg.prescale)
    if photos is None:
        photos = load_source(cfg.source, cfg.hr_size, prescale)
    train, test = build_data(cfg, "cpu", photos=photos)
    s = cfg.input_size
    res = []
    for r in cfg.eval_resolutions:
        if not test.has_truth(r):
            res.append(ResolutionFacts(r, None, None, None))
            continue
        truth = test.truth(r)
        if r <= s:
            res.append(ResolutionFacts(r, None, None, 0.0))
            continue
        bic = bicubic_upsample(test.inputs, r)
        res.append(ResolutionFacts(
            r, float(psnr(bic, truth).mean()), float(psnr_y(bic, truth, y_shave(r, s)).mean()),
            band_energy_fraction(truth, s)))
    return DataFacts(
        source=cfg.source, prescale=prescale, hr_size=test.hr_size, input_size=s,
        train_sampling=cfg.train_sampling, min_texture=cfg.min_texture,
        train_photos=list(train.names), train_odds=train.draw_odds(),
        train_usable=list(train.usable_fraction), train_left_out=list(train.textureless),
        skipped=train.skipped, test_crops=len(test), test_photos=dict(Counter(test.photos)),
        resolutions=res, fit_floor=float(lr_floor(test.inputs).mean()),
        description=photos.description,
    )


def describe_study(study: Study, trials: list[TrialConfig] | None = None) -> list[DataFacts]:
    """One DataFacts per distinct data config among the study's trials, in trial order."""
    trials = expand(study) if trials is None else trials
    groups: dict[DataConfig, list[str]] = {}
    for t in trials:
        names = groups.setdefault(resolved_data(t), [])
        if t.variant not in names:
            names.append(t.variant)
    out = []
    for cfg, variants in groups.items():
        facts = describe_data(cfg)
        facts.variants = variants
        out.append(facts)
    return out


def format_facts(facts: DataFacts, n_variants: int) -> list[str]:
    """The text `ablate data` prints for one data config."""
    f = facts
    who = "all variants" if len(f.variants) == n_variants else "variants " + ", ".join(f.variants)
    lines = [f"data ({who}): {f.source}, prescale {f.prescale:g}, HR {f.hr_size}×{f.hr_size}, "
             f"input {f.input_size}×{f.input_size}"]
    rule = (f"crops with texture < {f.min_texture:g} rejected" if f.min_texture > 0
            else "no texture rejection")
    how = "each photo equally likely" if f.train_sampling == "photo" else "photos by usable area"
    lines.append(f"  training   {len(f.train_photos)} photos, {how}; {rule}")
    if len(f.train_photos) <= 40:
        for name, odds, usable in zip(f.train_photos, f.train_odds, f.train_usable):
            lines.append(f"               {name:22s} {100 * odds:5.1f}% of crops, "
                         f"{100 * usable:5.1f}% of positions usable")
    if f.train_left_out:
        lines.append(f"             left out (no textured crop): {', '.join(f.train_left_out)}")
    if f.skipped:
        lines.append(f"             {f.skipped} photo(s) smaller than {f.hr_size} skipped")
    per = ", ".join(f"{k} {v}" for k, v in f.test_photos.items()) if len(f.test_photos) <= 20 \
        else f"{len(f.test_photos)} images"
    lines.append(f"  held out   {len(f.test_photos)} photos, {f.test_crops} crops of "
                 f"{f.hr_size}×{f.hr_size}: {per}")
    lines.append(f"  {'eval':>6}  {'bicubic PSNR':>12}  {'bicubic Y-PSNR':>14}  "
                 f"{'truth energy above ' + str(f.input_size // 2) + ' c/img':>28}")
    for r in f.resolutions:
        scale = f"×{r.resolution / f.input_size:g}"
        lines.append(f"  {r.resolution:>6}  {_db(r.psnr_bicubic):>12}  {_db(r.psnr_y_bicubic):>14}  "
                     f"{_pct(r.energy_above_nyquist, r.resolution, f.input_size):>28}  {scale}")
    lines.append(f"  fitness floor {_db(f.fit_floor)}: the inputs' half-resolution copies "
                 f"({f.input_size} → {f.input_size // 2} → {f.input_size}); a model whose "
                 "PSNR at its input does not clear it (lower 95% bound over the held-out "
                 "photos) is unfit")
    return lines


def _db(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.2f} dB"


def _pct(x: float | None, r: int, s: int) -> str:
    if x is None or not math.isfinite(x) or r <= s:
        return "—"
    return f"{100 * x:.1f} %"


