"""ablate: ablation studies of a coordinate-based image model — super-resolution or resampling?"""

__version__ = "0.1.0"


def load_results(dir, columns=None, *, study=None):
    """A study's results (or every study under a results root) as a pandas DataFrame: one
    row per trial × eval resolution, every column typed, the trial config flattened into
    columns (`sigmas` as a list, `multiscale_mode`, `multiscale_resolutions`, `model.dim`,
    `train.lr`, …). `columns` keeps only those. See ablate/results/frame.py."""
    from ablate.results.frame import load_results as _load

    return _load(dir, columns, study=study)


__all__ = ["load_results", "__version__"]
