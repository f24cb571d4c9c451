"""The generalizable implicit neural representation: encode an image once, query it anywhere.

    model = build_model(cfg, input_size=32, device="cpu")
    lat = model.encode(img)                      # img (B, 3, 32, 32) in [0, 1]
    rgb = model.decode(lat, coords)              # coords (B, Q, 2), (y, x) in [0, 1] -> (B, Q, 3)
    big = model.render(img, 128)                 # (B, 3, 128, 128), decoded in chunks

Coordinates follow `ablate.data.coords` (pixel centres, row-major), so decoding
`make_coord(r)` and rearranging gives the r×r image. The architecture is in `encoder.py` and
`decoder.py`; `ModelConfig` (ablate.spec.config) holds every size.

The selective-scan backend is resolved once by `build_model` for the device (`auto` → `fused`
on CUDA where mamba_ssm imports, else `torch`); `scan_backend` reports the one in use.
Nothing here names a device: it comes from the inputs and the parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange
from torch import Tensor

from ablate.data.coords import make_coord
from ablate.model.decoder import Decoder
from ablate.model.encoder import Encoder
from ablate.model.mamba import Mamba
from ablate.model.scan import resolve_backend
from ablate.spec.config import ModelConfig


class SRModel(nn.Module):
    """Encoder (bidirectional Mamba over patch + LP tokens) and coordinate decoder."""

    def __init__(self, cfg: ModelConfig, input_size: int):
        super().__init__()
        self.cfg = cfg
        self.input_size = input_size
        self.encoder = Encoder(cfg, input_size)
        self.decoder = Decoder(cfg, grid=self.encoder.grid)
        self.backend = cfg.mamba_backend

    @property
    def backend(self) -> str:
        """The requested scan backend (auto | torch | fused | reference)."""
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        self._backend = name
        for m in self.modules():
            if isinstance(m, Mamba):
                m.backend = name

    @property
    def scan_backend(self) -> str:
        """The backend the scans run on, for the parameters' device."""
        return resolve_backend(self._backend, next(self.parameters()).device)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: weight decay on the weight matrices (and conv kernels)
        only; none on biases, LayerNorm weights, the LP tokens, Mamba's A_log and D (the
        rule of nanoGPT's `configure_optimizers`: decay tensors of ≥ 2 dims, plus the
        `_no_weight_decay` marker mamba_ssm puts on A_log and D, and the encoder on its
        latents)."""
        decay, no_decay = [], []
        for p in self.parameters():
            if not p.requires_grad:
                continue
            quiet = p.ndim < 2 or getattr(p, "_no_weight_decay", False)
            (no_decay if quiet else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    def encode(self, img: Tensor) -> Tensor:
        """The LP tokens of img: (B, 3, s, s) -> (B, num_latents, dim)."""
        if img.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"expected {self.input_size}×{self.input_size} inputs, got {tuple(img.shape)}"
            )
        return self.encoder(img)

    def decode(self, latents: Tensor, coords: Tensor) -> Tensor:
        return self.decoder(latents, coords)  # (B, Q, 3)

    def forward(self, img: Tensor, coords: Tensor) -> Tensor:
        return self.decode(self.encode(img), coords)

    def render(self, img: Tensor, r: int, chunk: int | None = None) -> Tensor:
        """The r×r image decoded from img: (B, 3, s, s) -> (B, 3, r, r). Encodes once, then
        decodes about `chunk` queries (default cfg.query_chunk) per call, over the batch."""
        per_image = max(1, (chunk or self.cfg.query_chunk) // img.shape[0])
        latents = self.encode(img)
        coords = make_coord(r, device=img.device)  # (r², 2), float32
        coords = coords.expand(img.shape[0], -1, -1)  # (B, r², 2)
        out = torch.cat(
            [self.decode(latents, c) for c in coords.split(per_image, dim=1)], dim=1
        )  # (B, r², 3)
        return rearrange(out, "b (h w) c -> b c h w", h=r)


def build_model(cfg: ModelConfig, input_size: int, device) -> SRModel:
    """An SRModel on `device` with its scan backend resolved there (BackendUnavailable if the
    config asks for `fused` where it cannot run)."""
    device = torch.device(device)
    backend = resolve_backend(cfg.mamba_backend, device)
    model = SRModel(cfg, input_size).to(device)
    model.backend = backend
    return model
