"""The on-device dataset: HR training crops and the fixed test set.

    photos = load_source(cfg.source, cfg.hr_size, cfg.prescale)   # uint8 numpy, host
    train, test = build_data(cfg, device, photos=photos)   # uint8 / float tensors, on device
    hr = train.epoch(generator)                            # (N, 3, hr, hr) float in [0, 1]
    x = downsample(hr, cfg.input_size)                     # the model's input
    y = downsample(hr, r)                                  # a target at resolution r

Training photos are copied to the device once, as one flat uint8 pixel buffer; every epoch's
crops (position, one of the 8 flips/rotations by 90°) are one gather from that buffer with
indices computed by torch on the device: no decoding and no host→device image copies after
construction. A crop is drawn in two steps (`DataConfig.train_sampling`, `min_texture`):
  1. its photo: every training photo equally likely ("photo", the default), or in proportion
     to its usable crop positions ("area", ≈ its area: large photos dominate);
  2. its position: uniformly among the photo's positions whose crop has texture ≥ min_texture
     (`ablate.data.texture`: mean squared luma step between neighbouring pixels). The usable
     positions are listed once, at construction, so rejection costs nothing per epoch and is
     exact (no retry loop). A photo with no usable position is left out, and counted.

Held-out crops (`TestData`) are the non-overlapping hr_size tiles of the held-out photos,
none rejected, taken in turn from each photo up to `test_samples`; each keeps the name of its
photo (`TestData.photos`), which per-image results and the table's intervals use.

`downsample` (ablate/imaging.py, antialiased bicubic) is the ONE resampler that makes inputs
(HR → input_size) and targets at any r (HR → r); evaluation's ground truth at r comes from it
too.

The HR side is `cfg.hr_size`, or the source's native size when smaller (CIFAR-10: 32). There is
no ground truth above it: `TestData.has_truth(r)` is False there and evaluation records NaN.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ablate.data.sources import DataError, Photos, load_source
from ablate.data.texture import texture_map
from ablate.imaging import downsample
from ablate.spec.config import DataConfig

log = logging.getLogger(__name__)

_GATHER_CHUNK = 1 << 22  # pixels gathered per step of `TrainData.epoch` (bounds index memory)


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
    weights: Tensor = field(default=None, repr=False)  # (P,) float64, host: photo draw odds
    positions: Tensor = field(default=None, repr=False)  # int32 on device: the usable top-left
    #   corners y0 · (W − hr + 1) + x0 of the photos where some are rejected, photo after photo
    #   (a photo whose every position is usable stores none: 4 bytes per position at most)
    dense: Tensor = field(default=None, repr=False)  # (P,) bool on device: every position usable
    pos_offsets: Tensor = field(default=None, repr=False)  # (P,) int64: start in `positions`
    pos_counts: Tensor = field(default=None, repr=False)  # (P,) int64: usable positions (all of
    #   a dense photo's)
    names: list[str] = field(default_factory=list)  # the photos kept, in order
    usable_fraction: list[float] = field(default_factory=list)  # per photo: usable / all
    textureless: list[str] = field(default_factory=list)  # photos left out: no usable crop
    sampling: str = "photo"
    min_texture: float = 0.0

    @classmethod
    def from_photos(
        cls, photos: list[np.ndarray], hr_size: int, num_samples: int, device,
        *, sampling: str = "photo", min_texture: float = 0.0, names: list[str] | None = None,
    ) -> TrainData:
        names = list(names) if names else [f"photo{i}" for i in range(len(photos))]
        big = [i for i, p in enumerate(photos) if min(p.shape[:2]) >= hr_size]
        skipped = len(photos) - len(big)
        if not big:
            raise DataError(f"no training photo is at least {hr_size}×{hr_size}")
        usable, counts, fraction, keep, textureless = [], [], [], [], []
        maps = (_texture_maps([photos[i] for i in big], hr_size) if min_texture > 0
                else [None] * len(big))
        for i, tex in zip(big, maps):
            h, w = photos[i].shape[:2]
            n_all = (h - hr_size + 1) * (w - hr_size + 1)
            ok = None if tex is None else np.flatnonzero(tex.ravel() >= min_texture)
            n_ok = n_all if ok is None else ok.size
            if n_ok == 0:
                textureless.append(names[i])
                continue
            keep.append(i)
            usable.append(None if n_ok == n_all else ok.astype(np.int32))
            counts.append(n_ok)
            fraction.append(n_ok / n_all)
        if textureless:
            log.warning("training photos with no crop of texture ≥ %g left out: %s",
                        min_texture, ", ".join(textureless))
        if not keep:
            raise DataError(
                f"no training crop of {hr_size}×{hr_size} has texture ≥ data.min_texture "
                f"({min_texture:g}); lower data.min_texture (0 keeps every crop)"
            )
        kept = [photos[i] for i in keep]
        h = torch.tensor([p.shape[0] for p in kept], dtype=torch.int64)
        w = torch.tensor([p.shape[1] for p in kept], dtype=torch.int64)
        offsets = torch.cumsum(h * w, 0) - h * w
        if all(p.shape == kept[0].shape for p in kept) and len(kept) > 1:
            flat = np.stack(kept).reshape(-1, 3)  # one copy for same-size sets (CIFAR)
        else:
            flat = np.concatenate([np.ascontiguousarray(p).reshape(-1, 3) for p in kept])
        counts = torch.tensor(counts, dtype=torch.int64)
        stored = torch.tensor([0 if u is None else u.size for u in usable], dtype=torch.int64)
        listed = [u for u in usable if u is not None]
        weights = torch.ones(len(kept), dtype=torch.float64) if sampling == "photo" \
            else counts.double()
        return cls(
            pixels=torch.from_numpy(flat).to(device),
            offsets=offsets.to(device),
            heights=h.to(device),
            widths=w.to(device),
            hr_size=hr_size,
            num_samples=num_samples,
            skipped=skipped,
            weights=weights,
            positions=torch.from_numpy(np.concatenate(listed) if listed
                                       else np.zeros(0, np.int32)).to(device),
            dense=torch.tensor([u is None for u in usable]).to(device),
            pos_offsets=(torch.cumsum(stored, 0) - stored).to(device),
            pos_counts=counts.to(device),
            names=[names[i] for i in keep],
            usable_fraction=fraction,
            textureless=textureless,
            sampling=sampling,
            min_texture=min_texture,
        )

    def draw_odds(self) -> list[float]:
        """Per kept photo, the probability that a crop comes from it."""
        w = self.weights.double().cpu()
        return (w / w.sum()).tolist()

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
        u = torch.rand(n, generator=generator, device=gdev, dtype=torch.float64)
        tf = torch.randint(0, 8, (n,), generator=generator, device=gdev)  # dihedral transform
        photo, u, tf = photo.to(dev), u.to(dev), tf.to(dev)

        w = self.widths[photo]
        count = self.pos_counts[photo]
        k = torch.minimum((u * count).long(), count - 1)  # uniform among usable positions
        pos = k
        if self.positions.numel():
            at = (self.pos_offsets[photo] + k).clamp_(max=self.positions.numel() - 1)
            pos = torch.where(self.dense[photo], k, self.positions[at].long())
        y0, x0 = pos // (w - hr + 1), pos % (w - hr + 1)

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
    photos: list[str] = field(default_factory=list)  # per crop: the held-out photo it is from
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
        names: list[str] | None = None,
    ) -> TestData:
        """At most `n` held-out crops, fixed by `seed`.

        whole=False: the non-overlapping hr_size tiles of each photo (a grid centred in the
        photo); photos are visited in a seeded order, each photo's tiles in a seeded order, and
        one tile is taken from each photo in turn until `n` (so every photo is used before any
        gives a second tile), in that order.
        whole=True: one image per photo — min(n, P) photos chosen by a seeded permutation, in
        file order — centre-cropped to hr_size (a no-op for images of exactly that size).
        """
        names = list(names) if names else [f"photo{i}" for i in range(len(photos))]
        keep = [i for i, p in enumerate(photos) if min(p.shape[:2]) >= hr_size]
        if not keep:
            raise DataError(f"no held-out photo is at least {hr_size}×{hr_size}")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(keep), generator=g).tolist()
        crops, crop_names = [], []
        if whole:
            for j in sorted(perm[: min(n, len(keep))]):
                p = photos[keep[j]]
                y0, x0 = (p.shape[0] - hr_size) // 2, (p.shape[1] - hr_size) // 2
                crops.append(p[y0 : y0 + hr_size, x0 : x0 + hr_size])
                crop_names.append(names[keep[j]])
        else:
            tiles = []  # per photo (in `perm` order): its tile corners, seeded order
            for j in perm:
                hgt, wid = photos[keep[j]].shape[:2]
                ny, nx = hgt // hr_size, wid // hr_size
                y_start, x_start = (hgt - ny * hr_size) // 2, (wid - nx * hr_size) // 2
                corners = [(y_start + a * hr_size, x_start + b * hr_size)
                           for a in range(ny) for b in range(nx)]
                order = torch.randperm(len(corners), generator=g).tolist()
                tiles.append([corners[t] for t in order])
            for k in range(max(len(t) for t in tiles)):
                for j, corners in zip(perm, tiles):
                    if k < len(corners) and len(crops) < n:
                        y0, x0 = corners[k]
                        crops.append(photos[keep[j]][y0 : y0 + hr_size, x0 : x0 + hr_size])
                        crop_names.append(names[keep[j]])
        hr = _to_float(torch.from_numpy(np.stack(crops)).to(device))
        return cls(hr=hr, input_size=input_size, hr_size=hr_size, photos=crop_names)


def _texture_maps(photos: list[np.ndarray], size: int) -> list[np.ndarray]:
    """`texture_map` of each photo; same-size photos (CIFAR) in one batched call."""
    if len(photos) > 1 and all(p.shape == photos[0].shape for p in photos):
        return list(texture_map(np.stack(photos), size))
    return [texture_map(p[None], size)[0] for p in photos]


def build_data(
    cfg: DataConfig, device, photos: Photos | None = None
) -> tuple[TrainData, TestData]:
    """The training and test data of `cfg` on `device`.

    `photos` (from `load_source(cfg.source, cfg.hr_size, cfg.prescale)`) may be passed to decode a source
    once for several trials; it is loaded here otherwise.
    """
    device = torch.device(device)
    if photos is None:
        photos = load_source(cfg.source, cfg.hr_size, cfg.prescale)
    hr = cfg.hr_size if photos.native_size is None else min(cfg.hr_size, photos.native_size)
    if cfg.input_size > hr:
        raise DataError(
            f"data.input_size {cfg.input_size} exceeds the HR side {hr} of source "
            f"{cfg.source!r}; lower data.input_size or raise data.hr_size"
        )
    train = TrainData.from_photos(photos.train, hr, cfg.train_samples, device,
                                  sampling=cfg.train_sampling, min_texture=cfg.min_texture,
                                  names=photos.train_names)
    train.skipped += photos.skipped
    test = TestData.from_photos(
        photos.test, photos.test_whole, hr, cfg.input_size, cfg.test_samples, cfg.split_seed,
        device, names=photos.test_names,
    )
    log.info(
        "%s; HR %d, %d training photos on %s, %d test crops",
        photos.description, hr, len(train), device, len(test),
    )
    return train, test
