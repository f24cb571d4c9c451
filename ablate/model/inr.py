"""The generalizable implicit neural representation: encode an image once, query it anywhere.

    model = build_model(cfg, input_size=32, device="cpu")
    lat = model.encode(img)                      # img (B, 3, 32, 32) in [0, 1]
    rgb = model.decode(lat, coords)              # coords (B, Q, 2), (y, x) in [0, 1] -> (B, Q, 3)
    big = model.render(img, 128)                 # (B, 3, 128, 128), decoded in chunks

Coordinates follow `ablate.data.coords` (pixel centres, row-major), so decoding
`make_coord(r)` and rearranging gives the r×r image. The architecture is in `encoder.py` and
`decoder.py`; `ModelConfig` (ablate.spec.config) holds every size. The interface the trial
core uses (forward, render, param_groups) is `base.ImageModel`'s, which LIIF (`liif.py`, the
positive control) shares; `build_model` builds the one `model.kind` names.

The selective-scan backend is resolved once by `build_model` for the device (`auto` → `fused`
on CUDA where mamba_ssm imports, else `torch`); `scan_backend` reports the one in use.
Nothing here names a device: it comes from the inputs and the parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ablate.model.base import ImageModel
from ablate.model.decoder import Decoder
from ablate.model.encoder import Encoder
from ablate.model.liif import LIIF
from ablate.model.mamba import Mamba
from ablate.model.scan import resolve_backend
from ablate.spec.config import ModelConfig


class SRModel(ImageModel):
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

    def encode(self, img: Tensor) -> Tensor:
        """The LP tokens of img: (B, 3, s, s) -> (B, num_latents, dim)."""
        if img.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"expected {self.input_size}×{self.input_size} inputs, got {tuple(img.shape)}"
            )
        return self.encoder(img)

    def decode(self, latents: Tensor, coords: Tensor, resolution: int | None = None) -> Tensor:
        """RGB at coords: (B, Q, 3). The seed's decoder does not use `resolution`."""
        return self.decoder(latents, coords)  # (B, Q, 3)


def build_model(cfg: ModelConfig, input_size: int, device) -> ImageModel:
    """The model of `cfg.kind` on `device`: an SRModel with its scan backend resolved there
    (BackendUnavailable if the config asks for `fused` where it cannot run), or LIIF."""
    device = torch.device(device)
    if cfg.kind == "liif":
        return LIIF(cfg, input_size).to(device)
    backend = resolve_backend(cfg.mamba_backend, device)
    model = SRModel(cfg, input_size).to(device)
    model.backend = backend
    return model
