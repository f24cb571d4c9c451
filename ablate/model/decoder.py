"""The decoder: RGB at continuous (y, x) query coordinates, given the LP tokens.

Per query coordinate x = (y, x) in [0, 1] (`ablate.data.coords` convention):

    γ_σ(x) = [sin(x·Bᵀ), cos(x·Bᵀ)],  B ~ N(0, σ²) of shape (F, 2), fixed   (2F features)
    q = W_q γ_{σ_q}(x)                                        the query (heads × head_dim)
    a = CrossAttention(q, context=tokens, bias = −α·dist²(x, token position))   (dim)
    bands σ_1 < σ_2 < … (coarse to fine), h_0 = 0:
        h_k = γ_{σ_k}(x) ⊙ (U_k a + W_k h_{k-1} + b_k)                        (2F)
        rgb = Σ_k head_k(h_k)                                                   (3)

σ is in radians per image side (coordinates span [0, 1], no 2π): a frequency row of B with norm
σ completes σ/2π cycles across the image. The Fourier matrices are buffers drawn from fixed
seeds (the query uses seed 0, band k seed k + 1), so they do not depend on the trial's seed and
are saved in checkpoints.

Modulation: FiLM-style scaling only. Each band multiplies its Fourier features elementwise by
an amplitude computed from the attention output and from the previous band's hidden (the
chaining of a multiplicative filter network, Fathony et al. 2021): products of sinusoids hold
sums of their frequencies, so band k can express detail up to the sum of the scales before it,
and each band adds its own linear RGB head.

Locality bias, added to the attention logits (α = `locality_alpha`):
- ``2d``: dist² = (y_q − y_t)² + (x_q − x_t)², coordinate units, token t at its patch centre.
- ``raster`` (the seed's): both the query and the token are mapped to a normalised raster
  position on the G×G patch grid, ρ(y, x) = ((y·G − ½)·G + (x·G − ½)) / G², i.e. the
  (continuous) row-major patch index divided by the number of patches; dist² = (ρ_q − ρ_t)².
  A token at patch (r, c) gets ρ = (r·G + c)/G², a query at that patch's centre the same, so
  horizontal neighbours are 1/G² apart and vertical ones 1/G.

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

from ablate.spec.config import ModelConfig

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


class GaussianFourierFeatures(nn.Module):
    """γ(x) = [sin(x·Bᵀ), cos(x·Bᵀ)], B ~ N(0, σ²) fixed: (..., 2) -> (..., 2F)."""

    def __init__(self, n_freq: int, sigma: float, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(n_freq, 2, generator=g) * sigma)  # (F, 2)
        self.sigma = sigma

    def forward(self, coords: Tensor) -> Tensor:
        # float32 even under autocast: angles reach hundreds of radians, bf16 would garble them
        with torch.autocast(coords.device.type, enabled=False):
            proj = coords.float() @ self.B.float().t()  # (..., F)
            return torch.cat([proj.sin(), proj.cos()], dim=-1)


def raster_position(coords: Tensor, grid: int) -> Tensor:
    """Normalised row-major patch index of (y, x) on a grid×grid patch grid: (..., 2) -> (...)."""
    row = coords[..., 0] * grid - 0.5
    col = coords[..., 1] * grid - 0.5
    return (row * grid + col) / grid**2


def locality_bias(coords: Tensor, positions: Tensor, alpha: float, mode: str, grid: int) -> Tensor:
    """Additive attention bias −α·dist²: coords (B, Q, 2), positions (T, 2) -> (B, 1, Q, T)."""
    if mode == "2d":
        dy = coords[..., 0, None] - positions[:, 0]  # (B, Q, T)
        dx = coords[..., 1, None] - positions[:, 1]
        d2 = dy.square() + dx.square()
    elif mode == "raster":
        d2 = (raster_position(coords, grid)[..., None] - raster_position(positions, grid)).square()
    else:
        raise ValueError(f"unknown locality {mode!r}; expected '2d' or 'raster'")
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


class Band(nn.Module):
    """One Fourier band: h = γ_σ(x) ⊙ (U a + W h_prev + b); rgb = head(h)."""

    def __init__(self, cfg: ModelConfig, sigma: float, seed: int, chained: bool):
        super().__init__()
        width = 2 * cfg.feature_dim
        self.fourier = GaussianFourierFeatures(cfg.feature_dim, sigma, seed)
        self.modulation = nn.Linear(cfg.dim, width)  # U, b: from the attention output
        self.chain = nn.Linear(width, width, bias=False) if chained else None  # W
        self.head = nn.Linear(width, 3)

    def forward(self, coords: Tensor, a: Tensor, h_prev: Tensor | None) -> tuple[Tensor, Tensor]:
        m = self.modulation(a)  # (B, Q, 2F)
        if self.chain is not None:
            m = m + self.chain(h_prev)
        h = self.fourier(coords) * m  # (B, Q, 2F)
        return h, self.head(h)


# ---------------------------------------------------------------------------------------------
# The decoder
# ---------------------------------------------------------------------------------------------


class Decoder(nn.Module):
    """tokens (B, T, dim), positions (T, 2), coords (B, Q, 2) -> rgb (B, Q, 3)."""

    def __init__(self, cfg: ModelConfig, grid: int):
        super().__init__()
        if cfg.locality not in ("2d", "raster"):
            raise ValueError(f"model.locality = {cfg.locality!r}; expected '2d' or 'raster'")
        self.grid = grid  # patches per side (raster distance)
        self.alpha = cfg.locality_alpha
        self.locality = cfg.locality
        self.query_fourier = GaussianFourierFeatures(cfg.feature_dim, cfg.query_sigma, seed=0)
        self.attn = CrossAttention(2 * cfg.feature_dim, cfg.dim, cfg.heads, cfg.head_dim, cfg.dim)
        sigmas = sorted(cfg.sigmas)  # coarse to fine
        self.bands = nn.ModuleList(
            [Band(cfg, s, seed=k + 1, chained=k > 0) for k, s in enumerate(sigmas)]
        )

    def forward(self, tokens: Tensor, positions: Tensor, coords: Tensor) -> Tensor:
        # The same queries for every image (an expanded, stride-0 batch: the full grid, or a
        # jitter draw shared by the batch): the bias and the Fourier features are computed once
        # and broadcast, instead of B times.
        if coords.shape[0] > 1 and coords.stride(0) == 0:
            coords = coords[:1]  # (1, Q, 2)
        bias = locality_bias(coords, positions, self.alpha, self.locality, self.grid)
        a = self.attn(self.query_fourier(coords), context=tokens, bias=bias)  # (B, Q, dim)
        h, rgb = None, 0.0
        for band in self.bands:
            h, out = band(coords, a, h)
            rgb = rgb + out  # (B, Q, 3)
        return rgb
