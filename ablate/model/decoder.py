"""The decoder: RGB at continuous (y, x) query coordinates, given the LP tokens.

The seed's LA-INR decoder (trans-inr-master, `models/hyponets/lainr_mlp_bias.py`), exactly.
Per query coordinate x = (y, x) in [0, 1]² (`ablate.data.coords` convention, pixel centres):

    γ_σ(x) = [sin(π·x·ω), cos(π·x·ω)],  ω = logspace(1, log10 σ, n), n = feature_dim / 4,
             over both axes                                                 (feature_dim)
    q   = ReLU(W_q γ_16(x))                                                 (dim)
    m   = CrossAttention(q, context = LP tokens, bias = locality bias)      (dim)
    per band k, in the order given (σ = [128, 32]: 128 first):
        h_k = ReLU(E_k γ_σk(x));   m_k = ReLU(h_k + M_k m)                  (dim)
    chain: v_0 = m_0,  v_k = ReLU(C_k (m_k + v_{k−1}))                      (dim)
    rgb = Σ_k O_k v_k                                                       (3)

With dim 256, feature_dim 64 and two bands this is 380,166 parameters. The cross-attention is
2 heads × 64: to_q and to_kv without bias, to_out with bias, scores · 64^-½ plus the bias,
softmax over the LP tokens, which enter without a LayerNorm.

Locality bias (added to the attention scores; α = `model.locality_alpha`, m LP tokens, G×G
patch grid; see `locality_bias`):
- ``raster`` (the original): the query's patch index i = ⌊y·G⌋·G + ⌊x·G⌋ (clamped to the
  grid), t = i / G²; LP token j at s_j = (j + ½)/m; bias = −α·(t − s_j)². t and s live in
  [0, 1], so with α = 10 the bias spans at most 10 nats over the whole sequence, and the next
  token's bias differs from the query's own token's by 2α/m² ≈ 3e-4 nats (m = 256): nearly
  inert (the original's behaviour, kept as the default so that it can be measured).
- ``2d``: d = the distance between the query and LP token j's patch centre **in patch
  widths**; bias = −α·d². With α = 1 … 10 a query attends mostly to its own neighbourhood.
  Needs one LP token per patch (token j at patch j, row-major).
- ``none``: no bias.

Attention runs through `F.scaled_dot_product_attention` with the float bias as `attn_mask`;
`attention_reference` is the plain softmax formula beside it (`CrossAttention.use_sdpa`
chooses; the tests compare them).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ablate.data.coords import make_coord
from ablate.spec.config import ModelConfig

LOCALITIES = ("raster", "2d", "none")

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


class FourierFeatures(nn.Module):
    """γ_σ(x) = [sin(π·x·ω), cos(π·x·ω)], ω = logspace(1, log10 σ, n): (..., 2) -> (..., 4n).

    Layout: sines then cosines, each (y frequencies, then x frequencies), low to high."""

    def __init__(self, feature_dim: int, sigma: float, omega_min: float | None = None):
        super().__init__()
        if feature_dim % 4:
            raise ValueError(f"model.feature_dim = {feature_dim} must be a multiple of 4 "
                             "(sin and cos of n frequencies on each of 2 axes)")
        self.n = feature_dim // 4
        self.sigma = sigma
        self.omega_min = 10.0 if omega_min is None else omega_min  # the seed's: 10

    def omega(self, dtype=torch.float32, device=None) -> Tensor:
        """The n frequencies, ω_min (10) … σ log-spaced: (n,). Not a buffer: made in the
        coordinates' dtype (float64 in the tests), and not saved in checkpoints (it follows
        the config)."""
        return torch.logspace(math.log10(self.omega_min), math.log10(self.sigma), self.n,
                              dtype=dtype, device=device)

    def forward(self, coords: Tensor) -> Tensor:
        # float32 (or float64) even under autocast: angles reach hundreds of radians, bf16
        # would garble them
        dtype = torch.promote_types(coords.dtype, torch.float32)
        with torch.autocast(coords.device.type, enabled=False):
            omega = self.omega(dtype, coords.device)
            angles = math.pi * coords.to(dtype)[..., None] * omega  # (..., 2, n)
            angles = angles.flatten(-2)  # (..., 2n): y frequencies, then x
            return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (..., 4n)


def raster_query_position(coords: Tensor, grid: int) -> Tensor:
    """t = (⌊y·G⌋·G + ⌊x·G⌋) / G², the query's normalised raster patch index: (..., 2) -> (...).
    Coordinates outside [0, 1) (jitter, the last pixel edge) are clamped to the grid."""
    cell = (coords * grid).floor().clamp(0, grid - 1)  # (..., 2)
    return (cell[..., 0] * grid + cell[..., 1]) / grid**2


def locality_bias(coords: Tensor, mode: str, alpha: float, grid: int,
                  num_latents: int) -> Tensor | None:
    """The additive attention bias of `mode` (module docstring): coords (B, Q, 2) ->
    (B, 1, Q, m) for m = num_latents LP tokens, or None for ``none``."""
    if mode == "none":
        return None
    if mode == "raster":
        t = raster_query_position(coords, grid)  # (B, Q)
        s = (torch.arange(num_latents, device=coords.device, dtype=t.dtype) + 0.5) / num_latents
        d2 = (t[..., None] - s).square()  # (B, Q, m)
    elif mode == "2d":
        if num_latents != grid * grid:
            raise ValueError(f'model.locality = "2d" needs one LP token per patch: '
                             f"model.num_latents = {num_latents}, the grid has {grid * grid}")
        centres = make_coord(grid, device=coords.device, dtype=coords.dtype)  # (m, 2)
        diff = (coords[..., None, :] - centres) * grid  # (B, Q, m, 2), in patch widths
        d2 = diff.square().sum(-1)  # (B, Q, m)
    else:
        raise ValueError(f"model.locality = {mode!r}; expected one of {LOCALITIES}")
    return (-alpha * d2).unsqueeze(1)


def attention_reference(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
    """softmax(q kᵀ / √d + bias) v: q (B, h, Q, d), k, v (B, h, T, d), bias (B, 1, Q, T)."""
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, h, Q, T)
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1) @ v  # (B, h, Q, d)


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------


class CrossAttention(nn.Module):
    """Queries attend to a context: x (B or 1, Q, query_dim), context (B, T, context_dim)."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, head_dim: int, out_dim: int):
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, out_dim)
        self.use_sdpa = True  # False: attention_reference (tests compare the two)

    def forward(self, x: Tensor, context: Tensor, bias: Tensor | None = None) -> Tensor:
        q = rearrange(self.to_q(x), "b q (h d) -> b h q d", h=self.heads)
        k, v = rearrange(self.to_kv(context), "b t (two h d) -> two b h t d", two=2, h=self.heads)
        if q.shape[0] != k.shape[0]:  # queries shared by the batch: (1, h, Q, d) → (B, h, Q, d)
            q = q.expand(k.shape[0], -1, -1, -1)
        if self.use_sdpa:
            if bias is not None:
                bias = bias.to(q.dtype)  # SDPA wants the mask in the query's dtype
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            out = attention_reference(q, k, v, bias)
        return self.to_out(rearrange(out, "b h q d -> b q (h d)"))  # (B, Q, out_dim)


def cell_offset(coords: Tensor, grid: int) -> Tensor:
    """The query's offset from the centre of its own patch, in patch widths, in [−½, ½):
    (..., 2) -> (..., 2). Coordinates outside [0, 1) (jitter) fall in the nearest edge patch."""
    cell = (coords * grid).floor().clamp(0, grid - 1)
    return coords * grid - cell - 0.5


class CellFeatures(nn.Module):
    """[offset, sin(2π·k·offset), cos(2π·k·offset)] for k = 1 … n: (..., 2) -> (..., 2 + 4n),
    offset = `cell_offset` (the `model.cell_features` option; not in the seed's decoder)."""

    def __init__(self, n: int, grid: int):
        super().__init__()
        self.n, self.grid = n, grid

    @property
    def dim(self) -> int:
        return 2 + 4 * self.n

    def forward(self, coords: Tensor) -> Tensor:
        off = cell_offset(coords, self.grid)  # (..., 2)
        k = torch.arange(1, self.n + 1, dtype=off.dtype, device=off.device)
        ang = (2 * math.pi * off[..., None] * k).flatten(-2)  # (..., 2n)
        return torch.cat([off, ang.sin(), ang.cos()], dim=-1)


class Band(nn.Module):
    """One Fourier band k: m_k = ReLU(ReLU(E γ_σ(x)) + M m); v_k = m_k (first band) or
    ReLU(C (m_k + v_{k−1})); rgb_k = O v_k."""

    def __init__(self, cfg: ModelConfig, sigma: float, first: bool, cell_dim: int = 0):
        super().__init__()
        self.fourier = FourierFeatures(cfg.feature_dim, sigma, cfg.fourier_min)
        self.embed = nn.Linear(cfg.feature_dim, cfg.dim)  # E_k
        self.cell = nn.Linear(cell_dim, cfg.dim, bias=False) if cell_dim else None  # R_k
        self.modulate = nn.Linear(cfg.dim, cfg.dim)  # M_k, from the attention output m
        self.chain = None if first else nn.Linear(cfg.dim, cfg.dim)  # C_k
        self.out = nn.Linear(cfg.dim, 3)  # O_k

    def forward(self, coords: Tensor, m: Tensor, v_prev: Tensor | None,
                cell: Tensor | None = None) -> tuple[Tensor, Tensor]:
        e = self.embed(self.fourier(coords))
        if self.cell is not None:
            e = e + self.cell(cell)  # h_k = ReLU(E_k γ_σ(x) + R_k c(x)) with cell features
        h = F.relu(e)  # (B or 1, Q, dim)
        m_k = F.relu(h + self.modulate(m))  # (B, Q, dim)
        v = m_k if self.chain is None else F.relu(self.chain(m_k + v_prev))
        return v, self.out(v)  # (B, Q, dim), (B, Q, 3)


# ---------------------------------------------------------------------------------------------
# The decoder
# ---------------------------------------------------------------------------------------------


class Decoder(nn.Module):
    """LP tokens (B, m, dim), coords (B, Q, 2) -> rgb (B, Q, 3)."""

    def __init__(self, cfg: ModelConfig, grid: int):
        super().__init__()
        if cfg.locality not in LOCALITIES:
            raise ValueError(f"model.locality = {cfg.locality!r}; expected one of {LOCALITIES}")
        self.grid = grid  # patches per side
        self.num_latents = cfg.num_latents
        self.alpha = cfg.locality_alpha
        self.locality = cfg.locality
        self.query_fourier = FourierFeatures(cfg.feature_dim, cfg.query_sigma, cfg.fourier_min)
        self.query = nn.Linear(cfg.feature_dim, cfg.dim)
        self.attn = CrossAttention(cfg.dim, cfg.dim, cfg.heads, cfg.head_dim, cfg.dim)
        self.cell = CellFeatures(cfg.cell_features, grid) if cfg.cell_features else None
        cell_dim = self.cell.dim if self.cell is not None else 0
        self.bands = nn.ModuleList(
            [Band(cfg, s, first=k == 0, cell_dim=cell_dim)
             for k, s in enumerate(cfg.sigmas)]  # in the order given
        )

    def forward(self, tokens: Tensor, coords: Tensor) -> Tensor:
        # The same queries for every image (an expanded, stride-0 batch: the full grid, or a
        # jitter draw shared by the batch): the bias, the Fourier features and everything that
        # depends on the coordinates alone are computed once and broadcast, instead of B times.
        if coords.shape[0] > 1 and coords.stride(0) == 0:
            coords = coords[:1]  # (1, Q, 2)
        bias = locality_bias(coords, self.locality, self.alpha, self.grid, self.num_latents)
        q = F.relu(self.query(self.query_fourier(coords)))  # (B or 1, Q, dim)
        m = self.attn(q, context=tokens, bias=bias)  # (B, Q, dim)
        cell = self.cell(coords) if self.cell is not None else None
        v, rgb = None, 0.0
        for band in self.bands:
            v, out = band(coords, m, v, cell)
            rgb = rgb + out  # (B, Q, 3)
        return rgb
