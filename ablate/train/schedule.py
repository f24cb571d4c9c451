"""What each training batch looks like: its resolution, its queries, its targets, its jitter.

The ablation axes live here, each exactly as named in the study spec:

* jitter placement — `per_epoch`: ONE noise tensor per epoch (per training resolution), reused
  by every batch and every image of the epoch: the seed's bug, reproduced faithfully so it can
  be measured; `per_batch`: a fresh draw per batch, shared by the batch's images; `per_sample`:
  a fresh draw per image. `gaussian` noise has std `jitter.std` in coordinate units; `uniform`
  is U(−½, ½) pixel at the batch's training resolution. Jitter moves the query coordinates only;
  the target stays the pixel's value.
* multi-scale — `off`: the full 32×32 grid (data.input_size), target = the input itself;
  `random_res`: one resolution per batch from the current set, target = HR downsampled
  (antialiased) to it; `hr_sample`: `samples` random pixel centres per image of the HR target at
  the drawn resolution (LIIF-style); `upsampled_input`: the full grid at the drawn resolution,
  target = the 32×32 input interpolated up (carries nothing above 16 cycles/image).
* curriculum — the resolution set of epoch e is the last stage with from_epoch ≤ e.

Every random choice draws from the trial's own `torch.Generator`, so a trial is reproducible and
its RNG state is checkpointed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ablate.data.coords import make_coord
from ablate.imaging import bicubic_upsample
from ablate.spec.config import DataConfig, TrainConfig


def resolutions_for_epoch(train: TrainConfig, data: DataConfig, epoch: int) -> tuple[int, ...]:
    """The training resolution set of 1-based `epoch`."""
    if train.multiscale.mode == "off":
        return (data.input_size,)
    staged = train.curriculum.resolutions_at(epoch)
    return staged if staged is not None else train.multiscale.resolutions


@dataclass
class Batch:
    inputs: Tensor  # (B, 3, s, s) the model's input
    coords: Tensor  # (B, Q, 2) query coordinates, (y, x) in [0, 1], jitter applied
    targets: Tensor  # (B, Q, 3) RGB in [0, 1]
    resolution: int


class Jitter:
    """Coordinate noise with the placement semantics above; holds the per-epoch draws."""

    def __init__(self, train: TrainConfig, generator: torch.Generator):
        self.cfg = train.jitter
        self.gen = generator
        self._epoch_noise: dict[tuple[int, int], Tensor] = {}  # (resolution, Q) → (1, Q, 2)

    def new_epoch(self) -> None:
        self._epoch_noise.clear()

    def _draw(self, shape, r: int, device) -> Tensor:
        if self.cfg.dist == "gaussian":
            return torch.randn(shape, generator=self.gen, device=device) * self.cfg.std
        return (torch.rand(shape, generator=self.gen, device=device) - 0.5) / r

    def noise(self, b: int, q: int, r: int, device) -> Tensor | None:
        """Noise to add to (b, q, 2) coordinates at training resolution r, or None."""
        placement = self.cfg.placement
        if placement == "none":
            return None
        if placement == "per_sample":
            return self._draw((b, q, 2), r, device)
        if placement == "per_batch":
            return self._draw((1, q, 2), r, device)
        key = (r, q)  # per_epoch: drawn once, then reused by every batch of the epoch
        if key not in self._epoch_noise:
            self._epoch_noise[key] = self._draw((1, q, 2), r, device)
        return self._epoch_noise[key]


class BatchMaker:
    """Turns a batch of HR crops into (inputs, coords, targets) for one training step."""

    def __init__(self, data: DataConfig, train: TrainConfig, generator: torch.Generator,
                 cpu_generator: torch.Generator, downsample):
        self.data, self.train = data, train
        self.gen = generator  # on the data's device: noise, pixel samples
        self.cpu_gen = cpu_generator  # control flow (resolution per batch) without a GPU sync
        self.downsample = downsample  # ablate.data.dataset.downsample (antialiased)
        self.jitter = Jitter(train, generator)
        self._coords: dict[tuple[int, str], Tensor] = {}

    def grid(self, r: int, device) -> Tensor:
        key = (r, str(device))
        if key not in self._coords:
            self._coords[key] = make_coord(r, device=device)
        return self._coords[key]  # (r*r, 2)

    def pick_resolution(self, choices: tuple[int, ...]) -> int:
        if len(choices) == 1:
            return choices[0]
        i = torch.randint(len(choices), (1,), generator=self.cpu_gen).item()
        return choices[int(i)]

    def make(self, hr: Tensor, inputs: Tensor, choices: tuple[int, ...]) -> Batch:
        """hr: (B, 3, H, H) float crops; inputs: (B, 3, s, s) their downsampled inputs."""
        b, device = hr.shape[0], hr.device
        mode = self.train.multiscale.mode
        r = self.pick_resolution(choices)
        if mode == "off" or r == self.data.input_size and mode != "hr_sample":
            target_img = inputs if r == self.data.input_size else self.downsample(hr, r)
        elif mode == "upsampled_input":
            target_img = bicubic_upsample(inputs, r)  # the same interpolant as the baseline
        else:  # random_res, hr_sample: real HR detail
            target_img = self.downsample(hr, r)
        grid = self.grid(r, device)
        flat = target_img.flatten(2).transpose(1, 2)  # (B, r*r, 3)
        if mode == "hr_sample":
            n = min(self.train.multiscale.samples, r * r)
            keys = torch.rand((b, r * r), generator=self.gen, device=device)
            idx = keys.argsort(dim=1)[:, :n]  # (B, n) distinct pixels per image
            coords = grid[idx]  # (B, n, 2)
            targets = torch.gather(flat, 1, idx.unsqueeze(-1).expand(-1, -1, 3))
        else:
            coords = grid.unsqueeze(0).expand(b, -1, -1)
            targets = flat
        noise = self.jitter.noise(b, coords.shape[1], r, device)
        if noise is not None:
            if coords.stride(0) == 0 and noise.shape[0] == 1:  # one grid, one draw for all
                coords = (coords[:1] + noise).expand(b, -1, -1)  # stays a stride-0 view
            else:
                coords = coords + noise
        # a stride-0 batch dimension tells the decoder that every image has the same queries
        return Batch(inputs=inputs, coords=coords, targets=targets, resolution=r)


def lr_lambda(train: TrainConfig, steps_per_epoch: int):
    """Linear warmup over `warmup_epochs`, then cosine from lr to min_lr (as a multiplier)."""
    total = max(1, train.epochs * steps_per_epoch)
    warm = int(round(train.warmup_epochs * steps_per_epoch))
    floor = train.min_lr / train.lr

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return f
