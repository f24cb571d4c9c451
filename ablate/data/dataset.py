"""The on-device dataset: HR training crops, the fixed test set, and the one downsampler.

    photos = load_source(cfg.source, cfg.hr_size)         # uint8 numpy, host
    train, test = build_data(cfg, device, photos=photos)   # uint8 / float tensors, on device
    hr = train.epoch(generator)                            # (N, 3, hr, hr) float in [0, 1]
    x = downsample(hr, cfg.input_size)                     # the model's input
    y = downsample(hr, r)                                  # a target at resolution r

Training photos are copied to the device once, as one flat uint8 pixel buffer; every epoch's
crops (position, one of the 8 flips/rotations by 90°) are one gather from that buffer with
indices computed by torch on the device: no decoding and no host→device image copies after
construction. A photo is drawn with probability proportional to its area, so every training
pixel is about equally likely to be seen.

`downsample` (antialiased bicubic) is the ONE resampler that makes inputs (HR → input_size) and
targets at any r (HR → r); evaluation's ground truth at r comes from it too.

The HR side is `cfg.hr_size`, or the source's native size when smaller (CIFAR-10: 32). There is
no ground truth above it: `TestData.has_truth(r)` is False there and evaluation records NaN.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ablate.data.sources import DataError, Photos, load_source
from ablate.spec.config import DataConfig

log = logging.getLogger(__name__)

_GATHER_CHUNK = 1 << 22  # pixels gathered per step of `TrainData.epoch` (bounds index memory)


def downsample(hr: Tensor, r: int) -> Tensor:
    """Antialiased bicubic resize of (N, 3, H, H) images in [0, 1] to (N, 3, r, r), clamped.

    Identity (the same tensor) when r equals the size. Used for upsampling too (r > H) only by
    the `upsampled_input` recipe; ground truth is never upsampled.
    """
    if hr.shape[-1] == r and hr.shape[-2] == r:
        return hr
    out = F.interpolate(hr, size=(r, r), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def _to_float(img_u8: Tensor) -> Tensor:
    """uint8 (..., H, W, 3) → float (..., 3, H, W) in [0, 1]."""
    return img_u8.movedim(-1, -3).float().div_(255.0)


@dataclass
class TrainData:
    """Training photos on the device; `epoch` draws random HR crops from them."""

    pixels: Tensor  # (total_pixels, 3) uint8 on device: every photo, row-major, concatenated
    offsets: Tensor  # (P,) int64 on device: index of each photo's first pixel in `pixels`
    heights: Tensor  # (P,) int64 on device
    widths: Tensor  # (P,) int64 on device
    hr_size: int  # side of the crops
    num_samples: int  # crops per epoch (cfg.train_samples)
    skipped: int = 0  # photos smaller than hr_size, left out
    weights: Tensor = field(default=None, repr=False)  # (P,) float64, host: photo areas (draw odds)

    @classmethod
    def from_photos(
        cls, photos: list[np.ndarray], hr_size: int, num_samples: int, device
    ) -> TrainData:
        keep = [p for p in photos if min(p.shape[:2]) >= hr_size]
        skipped = len(photos) - len(keep)
        if not keep:
            raise DataError(f"no training photo is at least {hr_size}×{hr_size}")
        h = torch.tensor([p.shape[0] for p in keep], dtype=torch.int64)
        w = torch.tensor([p.shape[1] for p in keep], dtype=torch.int64)
        offsets = torch.cumsum(h * w, 0) - h * w
        if all(p.shape == keep[0].shape for p in keep) and len(keep) > 1:
            flat = np.stack(keep).reshape(-1, 3)  # one copy for same-size sets (CIFAR)
        else:
            flat = np.concatenate([np.ascontiguousarray(p).reshape(-1, 3) for p in keep])
        return cls(
            pixels=torch.from_numpy(flat).to(device),
            offsets=offsets.to(device),
            heights=h.to(device),
            widths=w.to(device),
            hr_size=hr_size,
            num_samples=num_samples,
            skipped=skipped,
            weights=(h * w).double(),
        )

    @property
    def device(self) -> torch.device:
        return self.pixels.device

    def __len__(self) -> int:
        """Number of training photos."""
        return int(self.offsets.numel())

    def epoch(self, generator: torch.Generator, n: int | None = None) -> Tensor:
        """`n` (default `num_samples`) random crops: (n, 3, hr, hr) float in [0, 1], on device.

        Random numbers come from `generator` on its own device (CPU generator → the same crops
        on any device); only the (n,)-sized draws move to the data's device.
        """
        n = self.num_samples if n is None else n
        gdev, dev, hr = generator.device, self.device, self.hr_size
        if self.weights.device != gdev:  # once: not a host→device copy per batch
            self.weights = self.weights.to(gdev)
        photo = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        u = torch.rand(n, 2, generator=generator, device=gdev, dtype=torch.float64)
        tf = torch.randint(0, 8, (n,), generator=generator, device=gdev)  # dihedral transform
        photo, u, tf = photo.to(dev), u.to(dev), tf.to(dev)

        h, w = self.heights[photo], self.widths[photo]
        y0 = torch.minimum((u[:, 0] * (h - hr + 1)).long(), h - hr)
        x0 = torch.minimum((u[:, 1] * (w - hr + 1)).long(), w - hr)

        out = torch.empty(n, 3, hr, hr, device=dev)
        a = torch.arange(hr, device=dev)
        rows, cols = a.view(1, hr, 1), a.view(1, 1, hr)  # output pixel (i, j)
        step = max(1, _GATHER_CHUNK // (hr * hr))
        for s in range(0, n, step):
            sl = slice(s, min(n, s + step))
            t = tf[sl].view(-1, 1, 1)
            transpose, flip_y, flip_x = (t & 4) > 0, (t & 2) > 0, (t & 1) > 0
            src_y = torch.where(transpose, cols, rows)  # (b, hr, hr) crop row read for (i, j)
            src_x = torch.where(transpose, rows, cols)
            src_y = torch.where(flip_y, hr - 1 - src_y, src_y)
            src_x = torch.where(flip_x, hr - 1 - src_x, src_x)
            idx = (
                self.offsets[photo[sl]].view(-1, 1, 1)
                + (y0[sl].view(-1, 1, 1) + src_y) * w[sl].view(-1, 1, 1)
                + x0[sl].view(-1, 1, 1)
                + src_x
            )  # (b, hr, hr)
            crops = self.pixels.index_select(0, idx.reshape(-1)).view(-1, hr, hr, 3)
            out[sl] = _to_float(crops)
        return out


@dataclass
class TestData:
    """A fixed, seeded set of held-out HR crops, with inputs and ground truth at any r."""

    __test__ = False  # not a pytest class, despite the name

    hr: Tensor  # (n, 3, hr, hr) float in [0, 1] on device
    input_size: int  # side of `inputs`
    hr_size: int  # side of `hr`: no ground truth above it
    inputs: Tensor = field(init=False)  # (n, 3, s, s) = downsample(hr, input_size)
    _truth: dict[int, Tensor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        self.inputs = downsample(self.hr, self.input_size)

    def __len__(self) -> int:
        return int(self.hr.shape[0])

    @property
    def device(self) -> torch.device:
        return self.hr.device

    def has_truth(self, r: int) -> bool:
        """Whether an r×r ground truth exists (r not above the HR side)."""
        return r <= self.hr_size

    def truth(self, r: int) -> Tensor:
        """(n, 3, r, r): the HR crops downsampled to r (cached)."""
        if not self.has_truth(r):
            raise ValueError(
                f"no ground truth at {r}: the HR images are {self.hr_size}×{self.hr_size}"
            )
        if r not in self._truth:
            self._truth[r] = downsample(self.hr, r)
        return self._truth[r]

    @classmethod
    def from_photos(
        cls,
        photos: list[np.ndarray],
        whole: bool,
        hr_size: int,
        input_size: int,
        n: int,
        seed: int,
        device,
    ) -> TestData:
        """`n` crops of the held-out photos, fixed by `seed`.

        whole=False: crop k comes from photo perm[k mod P] (a seeded permutation, so every
        photo is used before any repeats) at a seeded random position.
        whole=True: one image per photo — min(n, P) photos chosen by the seeded permutation, in
        file order — centre-cropped to hr_size (a no-op for images of exactly that size).
        """
        keep = [p for p in photos if min(p.shape[:2]) >= hr_size]
        if not keep:
            raise DataError(f"no held-out photo is at least {hr_size}×{hr_size}")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(keep), generator=g).tolist()
        crops = []
        if whole:
            for i in sorted(perm[: min(n, len(keep))]):
                p = keep[i]
                y0, x0 = (p.shape[0] - hr_size) // 2, (p.shape[1] - hr_size) // 2
                crops.append(p[y0 : y0 + hr_size, x0 : x0 + hr_size])
        else:
            u = torch.rand(n, 2, generator=g, dtype=torch.float64).numpy()
            for k in range(n):
                p = keep[perm[k % len(keep)]]
                y0 = min(int(u[k, 0] * (p.shape[0] - hr_size + 1)), p.shape[0] - hr_size)
                x0 = min(int(u[k, 1] * (p.shape[1] - hr_size + 1)), p.shape[1] - hr_size)
                crops.append(p[y0 : y0 + hr_size, x0 : x0 + hr_size])
        hr = _to_float(torch.from_numpy(np.stack(crops)).to(device))
        return cls(hr=hr, input_size=input_size, hr_size=hr_size)


def build_data(
    cfg: DataConfig, device, photos: Photos | None = None
) -> tuple[TrainData, TestData]:
    """The training and test data of `cfg` on `device`.

    `photos` (from `load_source(cfg.source, cfg.hr_size)`) may be passed to decode a source
    once for several trials; it is loaded here otherwise.
    """
    device = torch.device(device)
    if photos is None:
        photos = load_source(cfg.source, cfg.hr_size)
    hr = cfg.hr_size if photos.native_size is None else min(cfg.hr_size, photos.native_size)
    if cfg.input_size > hr:
        raise DataError(
            f"data.input_size {cfg.input_size} exceeds the HR side {hr} of source "
            f"{cfg.source!r}; lower data.input_size or raise data.hr_size"
        )
    train = TrainData.from_photos(photos.train, hr, cfg.train_samples, device)
    train.skipped += photos.skipped
    test = TestData.from_photos(
        photos.test, photos.test_whole, hr, cfg.input_size, cfg.test_samples, cfg.split_seed, device
    )
    log.info(
        "%s; HR %d, %d training photos on %s, %d test crops",
        photos.description, hr, len(train), device, len(test),
    )
    return train, test
