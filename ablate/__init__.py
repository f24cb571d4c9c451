"""ablate: ablation studies of a coordinate-based image model — super-resolution or resampling?"""

__version__ = "0.1.0"
