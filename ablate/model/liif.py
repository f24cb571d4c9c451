"""LIIF, the positive control: a local implicit image function (Chen, Liu, Wang, "Learning
Continuous Image Representation with Local Implicit Image Function", CVPR 2021).

    model = build_model(ModelConfig(kind="liif"), input_size=32, device="cpu")
    feat = model.encode(img)                     # img (B, 3, s, s) in [0, 1] -> (B, 9C, s, s)
    rgb = model.decode(feat, coords, r)          # coords (B, Q, 2), (y, x) in [0, 1] -> (B, Q, 3)
    big = model.render(img, 128)                 # (B, 3, 128, 128), decoded in chunks

The original's model (github.com/yinboc/liif: models/liif.py `query_rgb`, models/edsr.py,
models/mlp.py, configs/train-div2k/train_edsr-baseline-liif.yaml), with ablate's conventions
at its edges. With the defaults (`LiifConfig`: 16 blocks × 64 channels, MLP 256 × 4, every
option on) it has 1,567,299 parameters (`ablate.spec.footprint.liif_parameters`).

Encoder (EDSR-baseline without its upsampler): conv3×3(3 → C); `encoder_blocks` residual blocks
x + conv(ReLU(conv(x))) (no normalisation, residual scale 1); conv3×3(C → C), plus the head's
output (global skip). One C-vector per input pixel.

Normalisation, as the original's `data_norm`: the encoder sees 2·img − 1, the MLP predicts
2·rgb − 1 (so rgb = ½·MLP + ½).

Coordinates: LIIF's are pixel centres in [−1, 1], u = 2c − 1 for ablate's c ∈ [0, 1]
(`ablate.data.coords`), the same (y, x) order; feature (i, j) of the s×s grid sits at
u_ij = (−1 + (2i+1)/s, −1 + (2j+1)/s). A query at resolution r has the cell 2/r (its pixel's
side in those units); `decode` takes r, because jittered or sampled coordinates do not say it.

Query (`query_rgb`), per query u:
- feature unfolding: each feature is its 3×3 neighbourhood concatenated (zero padded at the
  border; F.unfold's order: channel-major, then the 9 positions row-major): 9C values.
- local ensemble: for (v_y, v_x) in (−1, −1), (−1, 1), (1, −1), (1, 1), the feature nearest to
  u + v/s + 1e-6 (clamped to [−1 + 1e-6, 1 − 1e-6]): the four features around u. Without it
  (`local_ensemble = false`), the one nearest to u.
- MLP input: [the feature z, s·(u − u_z) (the relative coordinate), s·(2/r, 2/r) (the cell,
  with `cell_decode`)].
- blend: prediction k is weighted by the area |Δy·Δx| of the relative coordinate of the
  neighbour diagonally *opposite* to it (the original swaps the areas 0↔3, 1↔2; each area
  + 1e-9), divided by the sum of the four: bilinear weights in the feature grid.
"Nearest" is the feature cell that holds the point, which is the original's
grid_sample(mode='nearest') except exactly on a cell border (the 1e-6 shift keeps the
ensemble's pixel-centre queries off them). Kept from the original, too: a query exactly on the
last row's (or column's) feature centres gets the same feature for both of that axis's
neighbours, at relative coordinate 0, so all four areas are 1e-9 and the neighbours are
averaged equally.

`tests/test_liif.py` checks this module against the equations above, written out in float64.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ablate.model.base import ImageModel
from ablate.spec.config import LiifConfig, ModelConfig

ENSEMBLE = ((-1, -1), (-1, 1), (1, -1), (1, 1))  # (v_y, v_x), the original's loop order
EPS_SHIFT = 1e-6  # the original's shift off the cell borders (in [−1, 1] units)

# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class ResBlock(nn.Module):
    """EDSR's residual block: x + conv(ReLU(conv(x)))."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), nn.ReLU(),
                                  conv3x3(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class EDSRBaseline(nn.Module):
    """EDSR-baseline without its upsampler: (B, 3, s, s) -> (B, C, s, s)."""

    def __init__(self, channels: int, blocks: int):
        super().__init__()
        self.head = nn.Sequential(conv3x3(3, channels))
        self.body = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)],
                                  conv3x3(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(x)
        return x + self.body(x)


class MLP(nn.Module):
    """Linear + ReLU per hidden width, then a Linear: (..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, widths: tuple[int, ...], out_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        for w in widths:
            layers += [nn.Linear(in_dim, w), nn.ReLU()]
            in_dim = w
        layers.append(nn.Linear(in_dim, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class LIIF(ImageModel):
    """EDSR-baseline features per input pixel, decoded by a local implicit function."""

    def __init__(self, cfg: ModelConfig, input_size: int):
        super().__init__()
        self.cfg = cfg
        self.input_size = input_size  # LIIF takes any size; kept for the common interface
        self.opts: LiifConfig = cfg.liif or LiifConfig()
        c = self.opts.encoder_channels
        self.encoder = EDSRBaseline(c, self.opts.encoder_blocks)
        in_dim = c * (9 if self.opts.feature_unfold else 1) + 2 + (
            2 if self.opts.cell_decode else 0)
        self.imnet = MLP(in_dim, self.opts.mlp_widths, 3)
        self.backend = "none"  # no selective scan

    @property
    def scan_backend(self) -> str:
        return "none"

    def encode(self, img: Tensor) -> Tensor:
        """The (unfolded) features of img: (B, 3, s, s) -> (B, 9C or C, s, s)."""
        feat = self.encoder(img * 2 - 1)  # (B, C, s, s)
        if self.opts.feature_unfold:
            b, c, h, w = feat.shape
            feat = F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)
        return feat

    def decode(self, feat: Tensor, coords: Tensor, resolution: int | None = None) -> Tensor:
        """RGB at coords (B, Q, 2), (y, x) in [0, 1], sampled at `resolution`: (B, Q, 3)."""
        opts = self.opts
        if opts.cell_decode and resolution is None:
            raise ValueError("LIIF with cell_decode needs the resolution the queries sample "
                             "(its cell): decode(feat, coords, resolution)")
        b, d, h, w = feat.shape
        dtype = torch.promote_types(coords.dtype, torch.float32)  # float64 in the tests
        size = torch.tensor([h, w], dtype=dtype, device=coords.device)  # per axis (y, x)
        u = coords.to(dtype) * 2 - 1  # (B, Q, 2), LIIF's [−1, 1]
        flat = feat.flatten(2).transpose(1, 2)  # (B, h·w, D)
        shifts, eps = (ENSEMBLE, EPS_SHIFT) if opts.local_ensemble else (((0, 0),), 0.0)
        cell = None
        if opts.cell_decode:
            cell = (2.0 / resolution * size).expand(*u.shape)  # (B, Q, 2)
        preds, areas = [], []
        for v in shifts:
            shifted = (u + torch.tensor(v, dtype=dtype, device=u.device) / size + eps)
            shifted = shifted.clamp(-1 + 1e-6, 1 - 1e-6)
            ij = ((shifted + 1) / 2 * size).floor()  # (B, Q, 2) the cell holding the point
            ij = torch.minimum(ij, size - 1)
            centre = -1 + (2 * ij + 1) / size  # u_z
            rel = (u - centre) * size  # (B, Q, 2)
            index = (ij[..., 0] * w + ij[..., 1]).long()  # (B, Q)
            z = torch.gather(flat, 1, index.unsqueeze(-1).expand(-1, -1, d))  # (B, Q, D)
            inputs = [z, rel] if cell is None else [z, rel, cell]
            preds.append(self.imnet(torch.cat(inputs, dim=-1)))  # (B, Q, 3)
            areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)  # (B, Q)
        total = torch.stack(areas).sum(dim=0)
        areas = areas[::-1]  # each neighbour weighted by the area opposite it (0↔3, 1↔2)
        out = sum(p * (a / total).unsqueeze(-1) for p, a in zip(preds, areas))
        return out * 0.5 + 0.5  # LIIF predicts 2·rgb − 1
