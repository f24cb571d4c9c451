"""Mamba mixers: the selective state-space block and its bidirectional pair.

`Mamba` follows mamba_ssm's `mamba_simple.Mamba` (Gu & Dao 2023, "Mamba: Linear-Time Sequence
Modeling with Selective State Spaces") on its reference path: in_proj to x and the gate z, a
causal depthwise conv1d over x, x_proj to (dt, B, C), dt_proj, the selective scan with D skip
and silu(z) gating, out_proj. Initialisation as there: dt_proj's bias is softplus⁻¹ of dt drawn
log-uniformly in [dt_min, dt_max]; A = -exp(A_log) with the S4D-real init A_log = log(1..N);
D = 1. A_log and D carry `_no_weight_decay = True`, mamba_ssm's marker for optimisers.

`BiMamba` runs two independent mixers, one over the sequence and one over the flipped sequence
(flipped back), and averages them: each direction has its own conv, projections and SSM
parameters (like the seed's two directions averaged; Vision Mamba shares in/out projections
instead — we keep the directions fully separate, the simplest reading of "averaged").

The scan backend is a plain attribute (`backend`: auto | torch | fused | reference) that
`SRModel` sets on every mixer; `auto` is resolved per call from the input's device.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor

from ablate.model.scan import selective_scan


class Mamba(nn.Module):
    """Selective SSM mixer: (B, L, dim) -> (B, L, dim)."""

    def __init__(
        self,
        dim: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        backend: str = "auto",
    ):
        super().__init__()
        self.d_inner = expand * dim
        self.d_state = d_state
        self.dt_rank = math.ceil(dim / 16)
        self.backend = backend

        self.in_proj = nn.Linear(dim, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=False)

        # dt_proj: weights ~ U(±dt_rank^-½); bias = softplus⁻¹(dt), dt log-uniform in
        # [dt_min, dt_max]
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(
            torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

        # S4D-real: A = -(1, 2, …, N) for every channel
        A = repeat(torch.arange(1, d_state + 1, dtype=torch.float32), "n -> d n", d=self.d_inner)
        self.A_log = nn.Parameter(torch.log(A))  # (d_inner, N)
        self.D = nn.Parameter(torch.ones(self.d_inner))  # (d_inner,)
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True

    def _conv(self, x: Tensor) -> Tensor:
        """The causal depthwise conv1d over L, in the (B, L, D) layout (`self.conv1d`'s weights):
        y_t = b + Σ_k w_k · x_{t−K+1+k}. On CPU as K shifted multiply-adds, which keeps the
        layout the projections use (conv1d wants (B, D, L): two transposes per call); on other
        devices through conv1d. `tests/test_model.py` compares the two."""
        w, b = self.conv1d.weight[:, 0, :], self.conv1d.bias  # (D, K), (D,)
        K, L = w.shape[1], x.shape[1]
        if x.device.type != "cpu":
            y = self.conv1d(rearrange(x, "b l d -> b d l"))[..., :L]
            return rearrange(y, "b d l -> b l d")
        xp = F.pad(x, (0, 0, K - 1, 0))  # (B, L + K − 1, D): zeros before the first step
        y = torch.addcmul(b, xp[:, 0:L], w[:, 0])
        for k in range(1, K):
            y = torch.addcmul(y, xp[:, k:k + L], w[:, k])
        return y

    def forward(self, hidden: Tensor) -> Tensor:
        xz = self.in_proj(hidden)  # hidden (B, L, dim) -> (B, L, 2·d_inner)
        x, z = xz.chunk(2, dim=-1)  # (B, L, d_inner) each
        x = F.silu(self._conv(x))  # (B, L, d_inner), causal
        z = rearrange(z, "b l d -> b d l")

        x_dbl = self.x_proj(x)  # (B, L, dt_rank + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = rearrange(F.linear(dt, self.dt_proj.weight), "b l d -> b d l")  # bias: in the scan
        B = rearrange(B, "b l n -> b n l")  # (B, N, L), a view: the scan takes it as it is
        C = rearrange(C, "b l n -> b n l")
        A = -torch.exp(self.A_log.float())  # (d_inner, N)

        x = rearrange(x, "b l d -> b d l")  # a view: the scan reads (B, L, D) memory as is
        y = selective_scan(
            x, dt, A, B, C, self.D.float(), z=z,
            delta_bias=self.dt_proj.bias.float(), delta_softplus=True, backend=self.backend,
        )  # (B, d_inner, L)
        return self.out_proj(rearrange(y, "b d l -> b l d"))


class BiMamba(nn.Module):
    """Forward and backward Mamba mixers, averaged: (B, L, dim) -> (B, L, dim)."""

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 backend: str = "auto"):
        super().__init__()
        self.forward_mixer = Mamba(dim, d_state, d_conv, expand, backend=backend)
        self.backward_mixer = Mamba(dim, d_state, d_conv, expand, backend=backend)

    def forward(self, x: Tensor) -> Tensor:
        fwd = self.forward_mixer(x)
        bwd = self.backward_mixer(x.flip(1)).flip(1)
        return 0.5 * (fwd + bwd)
