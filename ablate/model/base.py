"""What the trial core and the evaluation use of a model, whatever its kind (`model.kind`).

    lat = model.encode(img)                      # img (B, 3, s, s) in [0, 1]
    rgb = model.decode(lat, coords, r)           # coords (B, Q, 2), (y, x) in [0, 1] -> (B, Q, 3)
    rgb = model(img, coords, r)                  # both
    big = model.render(img, 128)                 # (B, 3, 128, 128), decoded in chunks

`r` is the resolution the queries sample (their pixel is 1/r wide): jittered or sampled
coordinates do not say it, the batch does (ablate.train.schedule.Batch.resolution). LIIF
decodes it as its cell; the seed's model ignores it. Coordinates follow `ablate.data.coords`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange
from torch import Tensor

from ablate.data.coords import make_coord
from ablate.spec.config import ModelConfig


class ImageModel(nn.Module):
    """Encode an image once, decode RGB at any (y, x); subclasses give `encode`, `decode` and
    `scan_backend`."""

    cfg: ModelConfig
    input_size: int

    def encode(self, img: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, latents: Tensor, coords: Tensor, resolution: int | None = None) -> Tensor:
        raise NotImplementedError

    @property
    def scan_backend(self) -> str:
        """The selective-scan backend in use ("none" for a model without one): the
        `mamba_backend` column."""
        raise NotImplementedError

    def forward(self, img: Tensor, coords: Tensor, resolution: int | None = None) -> Tensor:
        return self.decode(self.encode(img), coords, resolution)  # (B, Q, 3)

    def render(self, img: Tensor, r: int, chunk: int | None = None) -> Tensor:
        """The r×r image decoded from img: (B, 3, s, s) -> (B, 3, r, r). Encodes once, then
        decodes about `chunk` queries (default cfg.query_chunk) per call, over the batch."""
        per_image = max(1, (chunk or self.cfg.query_chunk) // img.shape[0])
        latents = self.encode(img)
        coords = make_coord(r, device=img.device)  # (r², 2), float32
        coords = coords.expand(img.shape[0], -1, -1)  # (B, r², 2)
        out = torch.cat(
            [self.decode(latents, c, r) for c in coords.split(per_image, dim=1)], dim=1
        )  # (B, r², 3)
        return rearrange(out, "b (h w) c -> b c h w", h=r)

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
