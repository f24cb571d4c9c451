"""Typed, frozen configuration of a study and of one trial.

A study file (TOML) is parsed and validated at the edge (``ablate.spec.parse``) into these
dataclasses; everything inward (data, model, training, evaluation, orchestration) receives
them and never looks at raw dictionaries. Every field carries its default here, with a comment
saying what it means. The ``[model]`` and ``[train]`` defaults are the configuration of the
seed's code (README, "The model").

Field metadata drive validation in ``parse.py``:
  ``min`` / ``max``   inclusive bounds (numbers, or every element of a tuple)
  ``gt``              strict lower bound
  ``even``            integers (or elements) must be even
  ``nonempty``        tuples must have at least one element
Every number must be finite, every integer fit in 64 bits (``convert.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from ablate.spec.source import DataSource

JitterPlacement = Literal["none", "per_epoch", "per_batch", "per_sample"]
JitterDist = Literal["gaussian", "uniform"]
MultiscaleMode = Literal["off", "random_res", "hr_sample", "upsampled_input"]


SEED_MAX = 2 ** 32 - 1  # seeds are 32-bit: numpy's and the result files' range


def _f(default, **meta):
    """A dataclass field with validation metadata (see the module docstring)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for defaults")
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------------------------------
# The ablation axes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JitterConfig:
    """Noise added to the query coordinates during training (never at evaluation)."""

    placement: JitterPlacement = "none"  # none | per_epoch (one draw reused by every batch of an
    #   epoch: the seed's bug, kept to measure it) | per_batch | per_sample (one draw per image)
    dist: JitterDist = "gaussian"  # gaussian: N(0, std²) in coordinate units ([0, 1] spans the
    #   image, so 0.01 ≈ 0.32 px at 32); uniform: U(±½ pixel) at the current training resolution
    std: float = _f(0.01, min=0.0)  # std of the gaussian, coordinate units; unused by uniform

    def describe(self) -> str:
        if self.placement == "none":
            return "none"
        if self.dist == "uniform":
            return f"{self.placement}/uniform"
        return f"{self.placement}/gaussian({self.std:g})"


@dataclass(frozen=True)
class MultiscaleConfig:
    """Which resolutions supervise training and where their targets come from."""

    mode: MultiscaleMode = "off"  # off: targets at data.input_size only; random_res: one
    #   resolution per batch drawn from `resolutions`, targets = HR downsampled (antialiased);
    #   hr_sample: `samples` random pixel centres per image of the HR target at a drawn
    #   resolution (LIIF-style); upsampled_input: targets = the input interpolated up (flawed)
    resolutions: tuple[int, ...] = _f((32, 48, 64), min=2, even=True, nonempty=True)  # the set
    #   drawn from per batch (a curriculum replaces it stage by stage); hr_sample samples pixels
    #   of the target at the drawn resolution: [hr_size] gives LIIF's HR pixel centres
    samples: int = _f(1024, min=1)  # hr_sample: query pixels per image per batch

    def describe(self) -> str:
        if self.mode == "off":
            return "off"
        res = ",".join(str(r) for r in self.resolutions)
        if self.mode == "hr_sample":
            return f"hr_sample({self.samples}@{res})"
        return f"{self.mode}({res})"


@dataclass(frozen=True)
class CurriculumStage:
    from_epoch: int = _f(1, min=1)  # first epoch (1-based) of this stage, for the epochs the
    #   spec file sets (scaled when a trial trains for another number: ablate/spec/curriculum.py)
    resolutions: tuple[int, ...] = _f((32,), min=2, even=True, nonempty=True)  # training set
    from_fraction: float | None = _f(None, min=0.0)  # or: the share of training done before the
    #   stage starts, in [0, 1): epoch 1 + ⌊f · train.epochs⌋, so any epoch count works.
    #   Resolved to from_epoch before the trial id is computed (None is left out of the id).


@dataclass(frozen=True)
class CurriculumConfig:
    """Progressive training: stage k's resolution set is used from its `from_epoch` on (in a
    trial's config every stage has its from_epoch; ablate/spec/curriculum.py resolves them)."""

    stages: tuple[CurriculumStage, ...] = ()  # empty: no curriculum ("none" in a spec)

    def describe(self) -> str:
        if not self.stages:
            return "none"
        return " ".join(
            f"{s.from_epoch}:{','.join(str(r) for r in s.resolutions)}" for s in self.stages
        )

    def resolutions_at(self, epoch: int) -> tuple[int, ...] | None:
        """The resolution set of 1-based `epoch`, or None without a curriculum."""
        current = None
        for stage in self.stages:
            if stage.from_epoch <= epoch:
                current = stage.resolutions
        return current


# ---------------------------------------------------------------------------------------------
# Sections of a study file
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySection:
    name: str = "study"  # results go to results/<name>/; letters, digits, - and _
    seeds: tuple[int, ...] = _f((0,), min=0, max=SEED_MAX, nonempty=True)  # each variant runs
    #   once per seed; 0 … 2³²−1
    baseline: str = ""  # variant the table compares against ("" = the first variant)
    description: str = ""  # free text, shown by `ablate validate`


@dataclass(frozen=True)
class DataConfig:
    source: str = "bundled"  # bundled (photos inside scikit-image/scikit-learn wheels) |
    #   folder:PATH (every image under PATH) | cifar10:PATH (cifar-10-batches-py, 32×32 only)
    hr_size: int = _f(128, min=2, even=True)  # side of the HR crops ground truth comes from
    input_size: int = _f(32, min=4, even=True)  # side of the model's input (HR downsampled)
    eval_resolutions: tuple[int, ...] = _f((32, 64, 128), min=2, even=True, nonempty=True)  # sides
    #   the model renders at evaluation, each scored against the held-out truth (≤ hr_size)
    train_samples: int = _f(4096, min=1)  # random HR crops (with flips/rot90) per epoch: 40
    #   epochs × 4096 = 10,240 steps at batch 16 (measured: 6 epochs reach 27.5 dB at 32 on H200)
    test_samples: int = _f(64, min=1)  # at most this many held-out crops: the non-overlapping
    #   hr_size tiles of the held-out photos, taken in turn from each photo (seeded order)
    split_seed: int = _f(0, min=0, max=SEED_MAX)  # seeds which tiles are taken when there are more than
    #   test_samples (not the training seed)
    prescale: float | Literal["auto"] = _f("auto", min=1.0)  # every photo (train and held-out)
    #   is first downscaled by this factor (antialiased bicubic), so that a crop spans more of
    #   the scene and holds more detail above the input's Nyquist. "auto": 1.5 for bundled
    #   (chosen so that bicubic ×4 on the held-out crops scores 27.6 dB Y-PSNR, within DIV2K
    #   validation's 26–29 dB; see README "Data"), 1 for folder: and cifar10: (used as given).
    #   Resolved to its number before the trial id is computed.
    train_sampling: Literal["photo", "area"] = "photo"  # how a training crop's photo is drawn:
    #   photo = every training photo equally likely (a large, flat photo such as retina no
    #   longer dominates); area = in proportion to its usable crop positions (≈ its area)
    min_texture: float = _f(2e-4, min=0.0)  # training crops whose texture is below this are
    #   never drawn: texture = mean squared difference between neighbouring pixels of the HR
    #   crop's BT.601 luma (RGB in [0, 1]); 2e-4 ≈ an RMS step of 3.6/255 per pixel, which
    #   rejects the flat background of retina, skies and blank regions. 0 keeps every crop.
    #   Held-out crops are never rejected.

    @property
    def parsed_source(self) -> DataSource:
        """`source` as a typed value (ablate.spec.source); ValueError if malformed."""
        return DataSource.parse(self.source)


@dataclass(frozen=True)
class LiifConfig:
    """LIIF (Chen, Liu, Wang, CVPR 2021; ablate/model/liif.py), the positive control: an
    EDSR-baseline encoder without its upsampler gives a feature per input pixel, and an MLP
    predicts RGB from the nearby features, the query's offset from them and the cell size.
    The defaults are the original's (EDSR-baseline-LIIF, 1,567,299 parameters)."""

    encoder_blocks: int = _f(16, min=0)  # EDSR residual blocks (conv, ReLU, conv + skip)
    encoder_channels: int = _f(64, min=1)  # EDSR feature channels C: the feature per pixel
    mlp_widths: tuple[int, ...] = _f((256, 256, 256, 256), min=1, nonempty=True)  # hidden
    #   layers of the MLP (Linear + ReLU each), then a Linear to RGB
    feature_unfold: bool = True  # each feature is its 3×3 neighbourhood concatenated (C·9)
    local_ensemble: bool = True  # blend the 4 features around a query by area; False: the
    #   nearest feature alone
    cell_decode: bool = True  # the query's cell (its pixel size, 1/r at resolution r) is an
    #   input of the MLP


@dataclass(frozen=True)
class ModelConfig:
    """Which model (`kind`) and its sizes: the seed's encoder (bidirectional Mamba over patch +
    latent tokens) and decoder, or LIIF (`liif`)."""

    kind: Literal["lainr", "liif"] = "lainr"  # lainr: the seed's model (ablate/model/inr.py;
    #   every key below but `liif`); liif: LIIF, the positive control (ablate/model/liif.py;
    #   `liif`, `query_chunk`). Called `decoder` before LIIF: the trial id hashes it under that
    #   name, so earlier trials keep their ids (ablate/spec/ids.py)
    liif: LiifConfig | None = None  # LIIF's options, a table: liif = { encoder_blocks = 4,
    #   mlp_widths = [64, 64] }; for kind = "liif" the defaults fill what is not given, for
    #   kind = "lainr" it is dropped (so [model] may hold both kinds' keys)
    patch_size: int = _f(2, min=1)  # input patch side: 32×32 / 2 → 256 patch tokens
    dim: int = _f(256, min=8)  # token width
    depth: int = _f(6, min=1)  # bidirectional Mamba + MLP blocks
    num_latents: int = _f(256, min=1)  # learnable latent ("LP") tokens, interleaved
    #   equidistantly with the patch tokens (ablate/model/encoder.py)
    d_state: int = _f(16, min=1)  # Mamba SSM state size N
    d_conv: int = _f(4, min=1)  # Mamba depthwise conv width
    expand: int = _f(2, min=1)  # Mamba inner width = expand · dim
    mlp_dim: int = _f(1024, min=1)  # hidden width of each block's MLP
    mamba_backend: Literal["auto", "torch", "fused", "reference"] = "auto"  # selective scan:
    #   fused (mamba-ssm CUDA kernels), torch (chunked pure-PyTorch scan), reference (slow loop),
    #   auto (fused where it imports on CUDA, else torch). Not part of the trial id.
    query_sigma: float = _f(16.0, gt=0.0)  # Fourier scale σ_q of the decoder's query features
    heads: int = _f(2, min=1)  # cross-attention heads
    head_dim: int = _f(64, min=1)  # width per head
    locality: Literal["raster", "2d", "none"] = "raster"  # attention bias to the LP tokens:
    #   raster (the seed's: −α·(t − s_j)², t the query's patch index / G², s_j = (j + ½)/m;
    #   nearly inert at α = 10), 2d (−α·d², d to token j's patch centre in patch widths; needs
    #   num_latents = patches), none
    locality_alpha: float = _f(10.0, min=0.0)  # α of the locality bias
    sigmas: tuple[float, ...] = _f((128.0, 32.0), gt=0.0, nonempty=True)  # band Fourier scales
    #   σ, in the order given (the first band starts the chain): ω = logspace(1, log10 σ) in
    #   sin(π·x·ω), so the band's top frequency is σ/2 cycles per image side
    feature_dim: int = _f(64, min=4)  # Fourier features per band and query (a multiple of 4)
    fourier_min: float | None = _f(None, gt=0.0)  # lowest ω of every Fourier feature (query
    #   and bands; ω = logspace(log10 fourier_min, log10 σ)); None: 10, the seed's (no feature
    #   below 5 cycles/image). docs/fit.md measures what a lower start does
    cell_features: int | None = _f(None, min=1)  # not the seed's (None: off): give every band
    #   the query's position inside its own patch (offset from the patch centre, in patch
    #   widths, and sin/cos of 2π·k·offset for k = 1 … cell_features), as LIIF gives its MLP
    #   the relative coordinate. Without it, every band sees only absolute Fourier features,
    #   none periodic with the patch grid (docs/fit.md)
    query_chunk: int = _f(16384, min=1)  # queries decoded per chunk at evaluation (memory only)

    def resolved(self) -> ModelConfig:
        """As a trial holds it: LIIF's options filled with their defaults for kind = "liif"
        (so that the trial id holds them), dropped for the seed's model, which does not use
        them (a study may set them in [model] and run both kinds by a variant or grid axis)."""
        if self.kind == "liif" and self.liif is None:
            return dataclasses.replace(self, liif=LiifConfig())
        if self.kind == "lainr" and self.liif is not None:
            return dataclasses.replace(self, liif=None)
        return self


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _f(40, min=1)  # passes over data.train_samples crops
    batch_size: int = _f(16, min=1)  # images per step
    lr: float = _f(5e-4, gt=0.0)  # AdamW peak learning rate
    weight_decay: float = _f(1e-4, min=0.0)  # AdamW weight decay
    warmup_epochs: float = _f(1.0, min=0.0)  # linear warmup, then cosine to min_lr
    min_lr: float = _f(0.0, min=0.0)  # end of the cosine
    grad_clip: float = _f(1.0, min=0.0)  # max gradient norm (0 = off)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, else fp32
    jitter: JitterConfig = JitterConfig()  # default for variants that do not set it; a string
    #   is its placement alone
    multiscale: MultiscaleConfig = MultiscaleConfig()  # the same; a string is its mode alone
    curriculum: CurriculumConfig = CurriculumConfig()  # the same: a list of stages, or "none"


@dataclass(frozen=True)
class ResourcesConfig:
    cpus_per_trial: float = _f(1.0, min=1e-4)  # Ray CPUs reserved per trial (Ray counts in 1e-4)
    gpus_per_trial: float | str = 0.0  # fraction of a GPU per trial (0.25 packs 4), or "auto"
    max_failures: int = _f(2, min=0)  # retries of a crashing trial before it is recorded failed
    max_concurrent: int = _f(0, min=0)  # cap on simultaneous trials (0 = as resources allow)


@dataclass(frozen=True)
class VariantConfig:
    """One row of the table: a name, a label and the axis values it sets."""

    name: str
    label: str
    jitter: JitterConfig
    multiscale: MultiscaleConfig
    curriculum: CurriculumConfig
    sigmas: tuple[float, ...]
    overrides: tuple[tuple[str, object], ...] = ()  # other dotted keys it sets (model.*, train.*)
    stage_epochs: int = 0  # the train.epochs its curriculum's from_epoch stages were written for
    #   (the spec file's, before --set); a trial with other epochs scales them (spec/curriculum.py)


# ---------------------------------------------------------------------------------------------
# The resolved objects
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs; flows unchanged spec → trial → rows."""

    study: str
    variant: str
    label: str
    seed: int
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    grid: tuple[tuple[str, object], ...] = ()  # this trial's grid point: (axis, value) pairs
    trial_id: str = ""  # filled by ablate.spec.ids
    variant_order: int = 0  # index of the variant in the spec (the table's row order)
    spec_dir: str = ""  # directory of the study file: relative data paths resolve against it
    #   (not part of the id, so the same trial has the same id on every machine)
    search: str = ""  # the `ablate search` it was sampled by ("" for the study's own trials);
    #   not part of the id

    def axes(self) -> dict[str, object]:
        """The axis columns of the result rows (ablate.schema.TRIAL_COLUMNS)."""
        t = self.train
        return {
            "jitter": t.jitter.placement,
            "jitter_dist": t.jitter.dist if t.jitter.placement != "none" else "none",
            "jitter_std": float(t.jitter.std) if t.jitter.placement != "none" else 0.0,
            "multiscale": t.multiscale.describe(),
            "curriculum": t.curriculum.describe(),
            "sigmas": ",".join(f"{s:g}" for s in self.model.sigmas),
        }

    def grid_key(self) -> str:
        """A short label of the grid point ("" when the study has no grid)."""
        return ", ".join(f"{k}={format_value(v)}" for k, v in self.grid)


# The spec file's sections (a TOML table each) and their types; a trial's config is made of
# the last three, which variants, grid axes, --set and [search] keys address by dotted path.
SECTIONS = {
    "study": StudySection,
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "resources": ResourcesConfig,
}
TRIAL_SECTIONS = ("data", "model", "train")
# The variant axes: a variant's (and a grid's) shorthand key → the (section, key) it sets.
AXES = {
    "jitter": ("train", "jitter"),
    "multiscale": ("train", "multiscale"),
    "curriculum": ("train", "curriculum"),
    "sigmas": ("model", "sigmas"),
}


def axis_target(axis: str) -> tuple[str, str] | None:
    """(section, key) of a grid axis: a variant axis or "section.key"; None when neither."""
    if axis in AXES:
        return AXES[axis]
    parts = axis.split(".")
    if len(parts) == 2 and parts[0] in TRIAL_SECTIONS:
        return parts[0], parts[1]
    return None


@dataclass(frozen=True)
class Study:
    """A validated study: its sections, variants, grid and the file it came from."""

    path: str
    study: StudySection
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    resources: ResourcesConfig
    variants: tuple[VariantConfig, ...]
    grid: tuple[tuple[str, tuple[object, ...]], ...]  # axis → values, in file order
    overrides: tuple[tuple[str, object], ...] = ()  # the --set pairs applied
    search: object = None  # the [search] table (ablate.spec.search.SearchConfig), or None
    notes: tuple[str, ...] = ()  # what validation adjusted and the user should know (e.g. a
    #   curriculum scaled to --set train.epochs); the CLI prints them
    raw: dict = field(default_factory=dict, compare=False, repr=False)  # the merged document

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def baseline(self) -> str:
        return self.study.baseline or self.variants[0].name

    def grid_size(self) -> int:
        n = 1
        for _, values in self.grid:
            n *= len(values)
        return n


def format_value(v) -> str:
    """A grid value as the `grid` column and plan tables write it: [128,32], 0.01, {k=v}."""
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}={format_value(x)}" for k, x in v.items()) + "}"
    return str(v)
