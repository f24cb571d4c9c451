"""A study's results as one pandas DataFrame, for notebooks: `ablate.load_results`.

    import ablate
    df = ablate.load_results("results/quickstart")          # one study folder, or a results root
    df = ablate.load_results("results", columns=["variant", "seed", "resolution", "psnr"])

One row per trial × eval resolution, failed trials included (`status`). Every column of the
trial files (ablate/schema.py: study, trial_id, variant, label, seed, status, the
axes, resolution, psnr, ssim, psnr_y, the bicubic figures, the spectral ratios, verdict, …),
typed: text as str, whole numbers as pandas' nullable Int64, measurements as float64 (NaN
where a file written by an earlier version lacks one). The resolved trial config
(`config_json`) is flattened into typed columns as well:

    sigmas                    list of floats, band order (the file's column is "128,32")
    multiscale_mode           off | random_res | hr_sample | upsampled_input
    multiscale_resolutions    list of ints (the training resolution set)
    curriculum_stages         list of (from_epoch, [resolutions]) ([] without a curriculum)
    data.* model.* train.*    every key of the trial's config, e.g. model.dim, train.lr,
                              data.input_size, train.jitter.std (tuples as lists);
                              model.kind also for files that wrote it as model.decoder

`jitter`, `multiscale`, `curriculum` keep the short descriptions the table prints.
Ray-free and torch-free: it reads the Parquet files through ``results/read.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ablate.results.read import load_results as _load_studies
from ablate.schema import TRIAL_COLUMNS
from ablate.spec.ids import renamed


def load_results(dir: str | Path, columns=None, *, study: str | None = None):
    """Every trial row under DIR (a study folder or a results root; `study=` picks one) as a
    pandas DataFrame with typed columns (module docstring); `columns` keeps only those, in
    that order. Raises `ablate.results.read.NoResults` when DIR holds no results, ValueError
    naming the available columns for a column that does not exist."""
    import pandas as pd

    frames = []
    for s in _load_studies(dir, study=study, columns=None):
        if not s.rows.num_rows:
            continue
        frames.append(_typed(s.rows.to_pandas()))
    df = pd.concat(frames, ignore_index=True) if frames else _typed(pd.DataFrame())
    if columns is not None:
        columns = [columns] if isinstance(columns, str) else list(columns)
        unknown = [c for c in columns if c not in df.columns]
        if unknown:
            raise ValueError(f"no column {', '.join(map(repr, unknown))} in the results of "
                             f"{dir}; columns: {', '.join(df.columns)}")
        df = df[columns]
    return df


def _typed(df):
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    for c in TRIAL_COLUMNS.columns:  # files of earlier versions may lack some columns
        if c.name not in df.columns:
            df[c.name] = pd.Series([None] * len(df), dtype=object)
        if c.is_text:
            df[c.name] = df[c.name].fillna("").astype(str)
        elif pa.types.is_integer(c.type):
            df[c.name] = pd.to_numeric(df[c.name], errors="coerce").astype("Int64")
        elif c.is_number:
            df[c.name] = pd.to_numeric(df[c.name], errors="coerce").astype(np.float64)
    configs = [_config(text) for text in df["config_json"]]
    df["sigmas"] = [[float(x) for x in (cfg.get("model", {}).get("sigmas") or
                                        _split(text))]
                    for cfg, text in zip(configs, df["sigmas"])]
    ms = [cfg.get("train", {}).get("multiscale", {}) for cfg in configs]
    df["multiscale_mode"] = [m.get("mode", "") for m in ms]
    df["multiscale_resolutions"] = [[int(r) for r in m.get("resolutions", [])] for m in ms]
    df["curriculum_stages"] = [
        [(int(st["from_epoch"]), [int(r) for r in st["resolutions"]])
         for st in cfg.get("train", {}).get("curriculum", {}).get("stages", [])]
        for cfg in configs]
    flat = [_flatten({k: _section(cfg, k) for k in ("data", "model", "train")})
            for cfg in configs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    for k in keys:
        df[k] = [f.get(k) for f in flat]
    return df


def _config(text: str) -> dict:
    try:
        cfg = json.loads(text) if text else {}
    except ValueError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _section(cfg: dict, name: str):
    """A section of a trial's config, with the keys' current names (model.decoder → kind)."""
    section = cfg.get(name, {})
    return renamed(section, name) if isinstance(section, dict) else section


def _split(text: str) -> list[str]:
    return [x for x in str(text).split(",") if x.strip()]


def _flatten(d: dict, prefix: str = "") -> dict:
    """{"train": {"jitter": {"std": 0.01}}} → {"train.jitter.std": 0.01}; lists stay lists,
    except the curriculum's stages (their own column)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
