"""The encoder: a 32×32 image to latent ("LP") tokens placed at patch centres.

    img (B, 3, s, s) ─ patches of p×p ─ linear + fixed Fourier position code ─ P patch tokens
    interleave with m learnable LP tokens, equidistantly                   (B, P + m, dim)
    depth × [x + BiMamba(LN(x)); x + MLP(LN(x))]                            (B, P + m, dim)
    final LayerNorm, keep the LP tokens                                     (B, m, dim)

The interleaving is the seed's (`models/mamba_lainr_inr.py`): in the sequence of T = P + m
tokens, LP token j sits at position `torch.linspace(0, T − 1, m).long()[j]` and the patch
tokens fill the other positions in raster order; the LP outputs are read back from those
positions (`lp_index`). With P = m = 256 the LP tokens sit at 0, 2, 4, … and the last at 511.
The LP tokens are a (m, dim) parameter drawn from N(0, 1), with no position code of their own.

The position code is fixed (no parameters): sin/cos of 2π·f·y and 2π·f·x for dim // 4
frequencies f spaced geometrically from 1 to G/2 cycles per image (G patches per side, so the
highest is the patch grid's Nyquist), zero-padded up to dim, added to the patch embedding. The
LP tokens get no position code: each is its own learned vector, and its place in the sequence
is fixed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from einops import rearrange
from torch import Tensor

from ablate.data.coords import make_coord
from ablate.model.mamba import BiMamba
from ablate.spec.config import ModelConfig


def fourier_position_code(positions: Tensor, dim: int, grid: int) -> Tensor:
    """Fixed 2-D sinusoidal code of (y, x) positions in [0, 1]: (P, 2) -> (P, dim)."""
    n_freq = dim // 4
    top = max(grid / 2, 1.0)
    freqs = torch.logspace(0, math.log2(top), max(n_freq, 1), base=2.0)[:n_freq]  # cycles/image
    angles = 2 * math.pi * positions[:, :, None] * freqs  # (P, 2, F)
    code = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(1)  # (P, 4F)
    return nn.functional.pad(code, (0, dim - code.shape[1]))


def interleave_index(n_patches: int, num_latents: int) -> tuple[Tensor, Tensor]:
    """Sequence positions of the LP tokens, (m,), and of the patch tokens, (P,), in a sequence
    of P + m: LP j at `linspace(0, T − 1, m).long()[j]`, patches in the others, in order."""
    T = n_patches + num_latents
    lp = torch.linspace(0, T - 1, num_latents).long()
    is_lp = torch.zeros(T, dtype=torch.bool)
    is_lp[lp] = True
    if int(is_lp.sum()) != num_latents:  # cannot happen for P ≥ 0 (the step is ≥ 1); guard
        raise ValueError(f"LP positions collide for {n_patches} patches, {num_latents} latents")
    return lp, (~is_lp).nonzero().squeeze(1)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm bidirectional Mamba, then pre-norm MLP, each with a residual."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.mixer = BiMamba(cfg.dim, cfg.d_state, cfg.d_conv, cfg.expand, cfg.mamba_backend)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = MLP(cfg.dim, cfg.mlp_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Encoder(nn.Module):
    """img (B, 3, s, s) in [0, 1] -> LP tokens (B, m, dim)."""

    def __init__(self, cfg: ModelConfig, input_size: int):
        super().__init__()
        p = cfg.patch_size
        if input_size % p:
            raise ValueError(
                f"model.patch_size = {p} does not divide the input size {input_size}; "
                "pick a patch size that divides it"
            )
        self.grid = input_size // p  # patches per side
        n_patches = self.grid**2
        self.patch_size = p
        self.patch_embed = nn.Linear(3 * p * p, cfg.dim)
        self.register_buffer(
            "pos_code", fourier_position_code(make_coord(self.grid), cfg.dim, self.grid)
        )  # (P, dim), patch centres in raster order
        self.latents = nn.Parameter(torch.randn(cfg.num_latents, cfg.dim))  # (m, dim), N(0, 1)
        self.latents._no_weight_decay = True  # learnt tokens, not weights (SRModel.param_groups)
        lp_index, patch_index = interleave_index(n_patches, cfg.num_latents)
        self.register_buffer("lp_index", lp_index, persistent=False)  # (m,)
        self.register_buffer("patch_index", patch_index, persistent=False)  # (P,)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, img: Tensor) -> Tensor:
        x = rearrange(img * 2 - 1, "b c (h p1) (w p2) -> b (h w) (c p1 p2)",
                      p1=self.patch_size, p2=self.patch_size)  # (B, P, 3p²)
        x = self.patch_embed(x) + self.pos_code  # (B, P, dim)
        B, P, D = x.shape
        m = self.latents.shape[0]
        seq = x.new_empty(B, P + m, D)
        seq[:, self.patch_index] = x
        seq[:, self.lp_index] = self.latents.to(x.dtype)  # broadcast over the batch
        for block in self.blocks:
            seq = block(seq)
        return self.norm(seq[:, self.lp_index])  # the LP tokens: (B, m, dim)
