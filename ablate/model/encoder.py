"""The encoder: a 32×32 image to latent ("LP") tokens placed at patch centres.

    img (B, 3, s, s) ─ patches of p×p ─ linear + fixed Fourier position code ─ P patch tokens
    interleave with P learnable LP tokens: [p0, l0, p1, l1, …]              (B, 2P, dim)
    depth × [x + BiMamba(LN(x)); x + MLP(LN(x))]                            (B, 2P, dim)
    final LayerNorm, keep the LP tokens                                     (B, P, dim)

LP token i follows patch token i in the sequence and sits at patch i's centre, which is the
position the decoder's locality bias uses (`positions`, (P, 2), (y, x) in [0, 1], the same
convention as `ablate.data.coords.make_coord`). There is one LP token per patch: the config's
`num_latents` must equal the number of patches.

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
    """img (B, 3, s, s) in [0, 1] -> LP tokens (B, P, dim); `positions` (P, 2) is a buffer."""

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
        if cfg.num_latents != n_patches:
            raise ValueError(
                f"model.num_latents = {cfg.num_latents}, but a {input_size}×{input_size} input "
                f"in {p}×{p} patches has {n_patches} patches, and there is one LP token per "
                f"patch: set model.num_latents = {n_patches}"
            )
        self.patch_size = p
        self.patch_embed = nn.Linear(3 * p * p, cfg.dim)
        positions = make_coord(self.grid)  # (P, 2) patch centres, row-major
        self.register_buffer("positions", positions)
        self.register_buffer("pos_code", fourier_position_code(positions, cfg.dim, self.grid))
        self.latents = nn.Parameter(torch.randn(n_patches, cfg.dim) * 0.02)  # (P, dim)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, img: Tensor) -> Tensor:
        x = rearrange(img * 2 - 1, "b c (h p1) (w p2) -> b (h w) (c p1 p2)",
                      p1=self.patch_size, p2=self.patch_size)  # (B, P, 3p²)
        x = self.patch_embed(x) + self.pos_code  # (B, P, dim)
        lat = self.latents.expand(x.shape[0], -1, -1)  # (B, P, dim)
        x = rearrange(torch.stack([x, lat], dim=2), "b p two d -> b (p two) d")  # (B, 2P, dim)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 1::2]  # the LP tokens: (B, P, dim)
