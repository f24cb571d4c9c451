"""The report's figures (PNG, matplotlib Agg, no display needed).

Each function draws one figure for one study from what the reader returns and writes it to
`path`; it returns the path, or None when the study has nothing to draw yet (no spectra, no
history…). A study with a grid gets one row of panels per grid point. Colours follow the
variants' spec order, the same in every figure; bicubic is always black dashed, ground truth
solid black. Each variant also has its own marker, and its points sit a hair to the side of the
others' (`_dodge`), so variants whose curves coincide stay visible; the input's Nyquist
frequency and size are marked in grey, a colour no variant has.

- ``metric_vs_resolution``: PSNR or SSIM vs eval resolution, mean over seeds with a 95 %
  bootstrap band (of the mean over seeds), beside the gain over bicubic (model − bicubic).
- ``spectra``: radially averaged power at the highest resolution — truth, bicubic and each
  variant (mean over seeds) — with the input's Nyquist marked, and the same relative to truth.
- ``samples``: held-out reconstructions at the highest resolution: input, bicubic, each variant
  (its lowest seed), truth, plus a zoomed crop of each; under each image its PSNR vs truth.
- ``training``: training loss and quick PSNR per epoch, mean over seeds (band: min–max).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ablate.results.atomic import atomic_write  # noqa: E402
from ablate.table.stats import bootstrap_ci  # noqa: E402

DPI = 110
BICUBIC = dict(color="black", linestyle="--", linewidth=1.6)
TRUTH = dict(color="black", linestyle="-", linewidth=1.8)
MARK = "dimgrey"  # the input's size and Nyquist frequency: no variant's colour (tab10's grey is
#                   #7f7f7f, the 8th variant's, a lighter grey drawn solid, never dash-dotted)
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*"]


def variant_markers(names: list[str]) -> dict[str, str]:
    """One marker per variant, by spec order (repeats past ten)."""
    return {n: MARKERS[i % len(MARKERS)] for i, n in enumerate(names)}


def _dodge(i: int, n: int, step: float = 0.018) -> float:
    """Variant i of n: a multiplicative x-offset (a few % of an octave on a log2 axis) that
    sets coinciding points side by side, centred on the true x."""
    return 2.0 ** ((i - (n - 1) / 2) * step)


def variant_colors(names: list[str]) -> dict[str, tuple]:
    """One colour per variant, by spec order (tab10, tab20 beyond ten variants)."""
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _txt(s: str) -> str:
    """User text (labels, grid points, study names) safe from matplotlib's $…$ mathtext."""
    return str(s).replace("$", r"\$")


def _plain(variants: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, _txt(label)) for name, label in variants]


def _grid_title(grid: str) -> str:
    return f" — {_txt(grid)}" if grid else ""


def _save(fig: Figure, path: Path) -> Path:
    """A PNG written to a temporary name and renamed over `path`: a link planted at `path`
    is replaced, never written through."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI,
                                                      bbox_inches="tight"))


def _legend(fig: Figure, axes, n: int) -> None:
    """One legend for the figure, below the panels (bbox_inches="tight" keeps it in)."""
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen.keys()), loc="upper center",
               ncol=min(5, max(1, len(seen))), frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, 0.0))


# ---------------------------------------------------------------------------------------------


def metric_vs_resolution(done: pd.DataFrame, variants: list[tuple[str, str]], grids: list[str],
                         metric: str, input_size: int | None, study: str,
                         path: Path) -> Path | None:
    """`done`: completed trial rows. variants: (name, label) in spec order."""
    variants, study = _plain(variants), _txt(study)
    if done.empty or done[metric].notna().sum() == 0:
        return None
    unit = "PSNR (dB)" if metric == "psnr" else "SSIM"
    colors = variant_colors([v for v, _ in variants])
    markers = variant_markers([v for v, _ in variants])
    res = sorted(int(r) for r in done["resolution"].unique())
    fig = Figure(figsize=(11, 3.9 * len(grids) + 0.9))
    # one x-range for both panels (the gain has no point at the input size: bicubic is the input)
    axes = fig.subplots(len(grids), 2, squeeze=False, sharex=True)
    banded = False
    for gi, g in enumerate(grids):
        sub = done[done["grid"] == g]
        ax_abs, ax_gain = axes[gi]
        bic = sub.groupby("resolution")[f"{metric}_bicubic"].mean().reindex(res)
        ok = bic.notna()
        ax_abs.plot(np.array(res)[ok], bic[ok], marker="x", label="Bicubic", **BICUBIC)
        ax_gain.axhline(0.0, label="Bicubic", **BICUBIC)
        for k, (name, label) in enumerate(variants):
            v = sub[sub["variant"] == name]
            if v.empty:
                continue
            xs, mean, lo, hi, gain, glo, ghi = [], [], [], [], [], [], []
            shift = _dodge(k, len(variants))
            for r in res:
                vals = v.loc[v["resolution"] == r, metric].to_numpy(float)
                vals = vals[np.isfinite(vals)]
                if not vals.size:
                    continue
                ci = bootstrap_ci(vals)
                banded |= ci is not None
                ci = ci or (vals.mean(), vals.mean())
                xs.append(r * shift), mean.append(vals.mean()), lo.append(ci[0]), hi.append(ci[1])
                b = bic.get(r, np.nan)
                gain.append(vals.mean() - b), glo.append(ci[0] - b), ghi.append(ci[1] - b)
            c, mk = colors[name], markers[name]
            style = dict(marker=mk, color=c, label=label, linewidth=1.6, markersize=6.5,
                         markeredgecolor="white", markeredgewidth=0.7)
            ax_abs.plot(xs, mean, **style)
            ax_abs.fill_between(xs, lo, hi, color=c, alpha=0.18, linewidth=0)
            ax_gain.plot(xs, gain, **style)
            ax_gain.fill_between(xs, glo, ghi, color=c, alpha=0.18, linewidth=0)
        for ax in (ax_abs, ax_gain):
            ax.set_xscale("log", base=2)
            ax.set_xticks(res, [str(r) for r in res])
            ax.set_xlim(min(res) / 2 ** 0.25, max(res) * 2 ** 0.25)
            ax.minorticks_off()
            ax.tick_params(labelbottom=True)  # sharex hides them on all but the last row
            ax.set_xlabel("eval resolution (px per side)")
            ax.grid(alpha=0.3)
            if input_size:
                ax.axvline(input_size, color=MARK, linestyle="-.", linewidth=1)
                ax.annotate(f"input {input_size} px", (input_size, 0.02), xycoords=("data",
                            "axes fraction"), ha="left", va="bottom", fontsize=8, color=MARK,
                            xytext=(3, 0), textcoords="offset points")
        ax_abs.set_ylabel(unit)
        ax_abs.set_title(f"{unit.split(' ')[0]} vs resolution{_grid_title(g)}", fontsize=11)
        ax_gain.set_ylabel(f"{unit.split(' ')[0]} − bicubic" + (" (dB)" if metric == "psnr"
                                                                 else ""))
        ax_gain.set_title(f"gain over bicubic{_grid_title(g)}", fontsize=11)
    how = ("mean over seeds, band: 95 % bootstrap CI" if banded
           else "mean over seeds; one seed each: no confidence band")
    fig.suptitle(f"{study}: {unit} vs eval resolution ({how})", fontsize=12)
    fig.tight_layout()
    _legend(fig, axes.ravel(), len(variants))
    return _save(fig, path)


def spectra(spec: pd.DataFrame, done: pd.DataFrame, variants: list[tuple[str, str]],
            grids: list[str], input_size: int | None, study: str, path: Path) -> Path | None:
    """`spec`: spectra rows with trial_id; `done`: completed rows (trial_id → variant, grid)."""
    variants, study = _plain(variants), _txt(study)
    if spec.empty:
        return None
    top = int(spec["resolution"].max())
    s = spec[spec["resolution"] == top]
    meta = done.drop_duplicates("trial_id").set_index("trial_id")[["variant", "grid"]]
    s = s.join(meta, on="trial_id", how="inner")
    if s.empty:
        return None
    colors = variant_colors([v for v, _ in variants])
    markers = variant_markers([v for v, _ in variants])
    fig = Figure(figsize=(11, 3.9 * len(grids) + 0.9))
    axes = fig.subplots(len(grids), 2, squeeze=False)
    for gi, g in enumerate(grids):
        sub = s[s["grid"] == g]
        ax, ax_rel = axes[gi]
        truth = sub[sub["kind"] == "truth"].groupby("frequency")["power"].mean()
        bic = sub[sub["kind"] == "bicubic"].groupby("frequency")["power"].mean()
        if not truth.empty:
            ax.plot(truth.index, truth.values, label="Ground truth", **TRUTH)
            ax_rel.axhline(1.0, label="Ground truth", **TRUTH)
        if not bic.empty:
            ax.plot(bic.index, bic.values, label="Bicubic", **BICUBIC)
            if not truth.empty:
                rel = (bic / truth).dropna()
                ax_rel.plot(rel.index, rel.values, label="Bicubic", **BICUBIC)
        model = sub[sub["kind"] == "model"]
        every = max(1, len(truth) // 8) if not truth.empty else 4
        for k, (name, label) in enumerate(variants):
            m = model[model["variant"] == name].groupby("frequency")["power"].mean()
            if m.empty:
                continue
            # markers on every few frequencies, staggered per variant: coinciding curves show
            style = dict(color=colors[name], label=label, linewidth=1.4, marker=markers[name],
                         markersize=5, markevery=(k % every, every), markeredgecolor="white",
                         markeredgewidth=0.5)
            ax.plot(m.index, m.values, **style)
            if not truth.empty:
                rel = (m / truth).dropna()
                ax_rel.plot(rel.index, rel.values, **style)
        for a in (ax, ax_rel):
            a.set_yscale("log")
            a.set_xlim(0, top / 2)
            a.set_xlabel("radial frequency (cycles per image)")
            a.grid(alpha=0.3, which="major")
            if input_size:
                nyq = input_size / 2
                a.axvspan(nyq, top / 2, color=MARK, alpha=0.07, linewidth=0)
                a.axvline(nyq, color=MARK, linestyle="-.", linewidth=1.3)
                a.annotate(f"input Nyquist\n{nyq:g} cycles/image", (nyq, 0.03),
                           xycoords=("data", "axes fraction"), ha="left", va="bottom",
                           fontsize=8, color=MARK, xytext=(4, 0),
                           textcoords="offset points")
        ax.set_ylabel("power (log scale, a.u.)")
        ax.set_title(f"radially averaged power at {top}×{top}{_grid_title(g)}", fontsize=11)
        ax_rel.set_ylabel("power / ground-truth power (log)")
        ax_rel.set_title(f"relative to ground truth{_grid_title(g)}", fontsize=11)
    fig.suptitle(f"{study}: power spectra at {top} px (mean over seeds and held-out images)",
                 fontsize=12)
    fig.tight_layout()
    _legend(fig, axes.ravel(), len(variants))
    return _save(fig, path)


def _hwc(img: np.ndarray) -> np.ndarray:
    """(3, H, W) in [0, 1] → (H, W, 3) for imshow."""
    return np.clip(np.transpose(img, (1, 2, 0)), 0.0, 1.0)


def _psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """PSNR of one (3, H, W) image against truth, as the metrics compute it."""
    import torch  # ~1 s: only for the samples figure, not for every report import

    from ablate.metrics.image import psnr

    return float(psnr(torch.from_numpy(np.asarray(pred))[None],
                      torch.from_numpy(np.asarray(truth))[None])[0])


def samples(per_variant: dict[str, dict[str, np.ndarray]], variants: list[tuple[str, str]],
            study: str, grid: str, path: Path, n_images: int = 3) -> Path | None:
    """per_variant: variant name → predictions.npz arrays of one of its trials."""
    variants, study = _plain(variants), _txt(study)
    present = [(n, lab) for n, lab in variants if n in per_variant]
    if not present:
        return None
    ref = per_variant[present[0][0]]
    n = min(n_images, ref["truth"].shape[0])
    top = ref["truth"].shape[-1]
    s_in = ref["input"].shape[-1]
    cols = [("input", f"input {s_in}×{s_in}", ref["input"]),
            ("bicubic", f"bicubic {top}×{top}", ref["bicubic"])]
    cols += [(name, label, per_variant[name]["prediction"]) for name, label in present]
    cols += [("truth", f"ground truth {top}×{top}", ref["truth"])]
    crop = max(8, top // 4)  # zoom: the centre quarter, where detail above Nyquist shows
    c0 = (top - crop) // 2
    ncol = len(cols)
    fig = Figure(figsize=(1.9 * ncol, 1.95 * 2 * n + 0.6))
    axes = fig.subplots(2 * n, ncol, squeeze=False)
    for i in range(n):
        for j, (key, title, arr) in enumerate(cols):
            img = _hwc(arr[i])
            scale = img.shape[0] / top  # input is smaller: crop the same region
            a0, a1 = int(round(c0 * scale)), int(round((c0 + crop) * scale))
            ax_full, ax_zoom = axes[2 * i, j], axes[2 * i + 1, j]
            ax_full.imshow(img, interpolation="nearest")
            ax_zoom.imshow(img[a0:a1, a0:a1], interpolation="nearest")
            if j == 0:
                from matplotlib.patches import Rectangle

                ax_full.add_patch(Rectangle((a0 - 0.5, a0 - 0.5), a1 - a0, a1 - a0, fill=False,
                                            edgecolor="yellow", linewidth=1))
            if i == 0:
                ax_full.set_title(textwrap.fill(title, 20, break_on_hyphens=False), fontsize=9)
            if key not in ("input", "truth") and arr.shape[-1] == top:
                ax_full.set_xlabel(f"PSNR {_psnr(arr[i], ref['truth'][i]):.2f} dB", fontsize=8,
                                   labelpad=2)
            for ax in (ax_full, ax_zoom):
                ax.set_xticks([]), ax.set_yticks([])
        axes[2 * i, 0].set_ylabel(f"image {i + 1}", fontsize=9)
        axes[2 * i + 1, 0].set_ylabel(f"zoom ×{top / crop:g}", fontsize=9)
    fig.suptitle(f"{study}: held-out reconstructions at {top} px{_grid_title(grid)} "
                 f"(each variant: its lowest seed; PSNR vs ground truth; zoom: centre "
                 f"{crop}×{crop})", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def training(hist: pd.DataFrame, done: pd.DataFrame, variants: list[tuple[str, str]],
             grids: list[str], study: str, path: Path) -> Path | None:
    """Per-epoch loss and quick PSNR, mean over seeds, one colour per variant."""
    variants, study = _plain(variants), _txt(study)
    if hist.empty or "epoch" not in hist:
        return None
    meta = done.drop_duplicates("trial_id").set_index("trial_id")[["grid"]]
    h = hist.drop(columns=[c for c in ("grid",) if c in hist]).join(meta, on="trial_id",
                                                                     how="inner")
    if h.empty:
        return None
    h = h.drop_duplicates(["trial_id", "epoch"], keep="last")
    colors = variant_colors([v for v, _ in variants])
    markers = variant_markers([v for v, _ in variants])
    fig = Figure(figsize=(11, 3.7 * len(grids) + 0.9))
    axes = fig.subplots(len(grids), 2, squeeze=False)
    banded = False
    for gi, g in enumerate(grids):
        sub = h[h["grid"] == g]
        ax_loss, ax_psnr = axes[gi]
        for k, (name, label) in enumerate(variants):
            v = sub[sub["variant"] == name]
            if v.empty:
                continue
            n_seeds = v["trial_id"].nunique()
            for ax, col in ((ax_loss, "loss"), (ax_psnr, "quick_psnr")):
                if col not in v:
                    continue
                by = v.groupby("epoch")[col]
                mean, lo, hi = by.mean(), by.min(), by.max()
                every = max(1, len(mean) // 10)
                ax.plot(mean.index, mean.values, color=colors[name], linewidth=1.6,
                        marker=markers[name], markersize=5, markeredgecolor="white",
                        markeredgewidth=0.5, markevery=(k % every, every),
                        label=f"{label} ({n_seeds} seed{'s' if n_seeds != 1 else ''})")
                if n_seeds > 1:
                    banded = True
                    ax.fill_between(mean.index, lo.values, hi.values, color=colors[name],
                                    alpha=0.15, linewidth=0)
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("training loss (MSE, log scale)")
        ax_loss.set_title(f"training loss{_grid_title(g)}", fontsize=11)
        ax_psnr.set_ylabel("quick PSNR at input size (dB)")
        ax_psnr.set_title(f"held-out quick PSNR{_grid_title(g)}", fontsize=11)
        for ax in (ax_loss, ax_psnr):
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
    how = "mean over seeds, band: min–max" if banded else "one seed each: no band"
    fig.suptitle(f"{study}: training curves ({how})", fontsize=12)
    fig.tight_layout()
    _legend(fig, axes.ravel(), len(variants))
    return _save(fig, path)
