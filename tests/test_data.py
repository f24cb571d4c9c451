"""Data sources and the on-device dataset, on real files and the real bundled photos."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_fixtures import write_cifar, write_image, write_position_image

from ablate.data import sources
from ablate.data.dataset import TestData, TrainData, build_data
from ablate.imaging import downsample
from ablate.data.sources import BUNDLED_TEST, DataError, load_source
from ablate.spec.config import DataConfig

# --- bundled -----------------------------------------------------------------------------------


def test_bundled_offline_split_by_photo(monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("bundled source tried the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(sources, "_bundled_cache", {})  # decode from the wheels again
    p = load_source("bundled", 128)
    assert p.test_names == list(BUNDLED_TEST)
    assert set(p.train_names).isdisjoint(p.test_names)
    assert len(p.train) == 8 and len(p.test) == 7 and p.skipped == 0
    assert {"motorcycle_left", "motorcycle_right"} <= set(p.train_names)  # stereo pair together
    for img in p.train + p.test:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert not p.test_whole and p.native_size is None
    # disjoint as pixels too: no held-out photo is (a copy of) a training photo
    digests = lambda imgs: {hashlib.sha1(i.tobytes()).hexdigest() for i in imgs}  # noqa: E731
    assert digests(p.train).isdisjoint(digests(p.test))
    gray = {n for n, img in zip(p.train_names + p.test_names, p.train + p.test)
            if (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()}
    assert gray == {"camera", "coins", "brick"}  # grayscale photos are held out only
    assert "grace_hopper" in p.test_names  # matplotlib's sample photo, read without importing it


def test_bundled_prescale_downscales_every_photo():
    full = load_source("bundled", 128)
    half = load_source("bundled", 64, 2.0)
    for a, b in zip(full.train + full.test, half.train + half.test):
        assert b.shape[:2] == (round(a.shape[0] / 2), round(a.shape[1] / 2))
    # antialiased: the half-size photo is the full one averaged, not subsampled
    a = full.test[full.test_names.index("camera")].astype(float)
    b = half.test[half.test_names.index("camera")].astype(float)
    box = a.reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))
    assert np.abs(b - box).mean() < 4 and np.abs(b - a[::2, ::2]).mean() > np.abs(b - box).mean()
    assert load_source("bundled", 64, "auto").description.startswith("bundled (prescale 1.5)")
    with pytest.raises(DataError, match="hr_size ≤ 150 at prescale 2"):
        load_source("bundled", 360, 2.0)


def test_bundled_skips_small_photos_and_refuses_without_test(caplog):
    with caplog.at_level(logging.WARNING, logger="ablate.data.sources"):
        p = load_source("bundled", 400)
    assert p.skipped == 2 and "chelsea" not in p.test_names  # 300×451, and coins 303×384
    assert "2 photos smaller than hr_size 400" in caplog.text
    with pytest.raises(DataError, match="hr_size ≤ 300 at prescale 1"):
        load_source("bundled", 520)  # brick and camera are 512×512


def test_unknown_source():
    with pytest.raises(DataError, match="bundled.*folder:PATH.*cifar10:PATH"):
        load_source("imagenet:/data", 64)


# --- folder ------------------------------------------------------------------------------------


def _folder(tmp_path, n=12):
    root = tmp_path / "imgs"
    for i in range(n):
        ext = ["png", "jpg", "bmp", "PNG"][i % 4]
        write_image(root / ("sub" if i % 3 else "") / f"img{i:02d}.{ext}", 70 + i, 90, seed=i)
    write_image(root / "gray.png", 80, 80, seed=50, mode="L")
    write_image(root / "alpha.png", 80, 80, seed=51, mode="RGBA")
    write_image(root / "tiny1.png", 20, 200, seed=52)
    write_image(root / "deep" / "er" / "tiny2.png", 40, 40, seed=53)
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_recursive_split_and_skips(tmp_path, caplog):
    root = _folder(tmp_path)
    with caplog.at_level(logging.WARNING, logger="ablate.data.sources"):
        p = load_source(f"folder:{root}", 64)
    assert p.skipped == 2 and "2 images smaller than hr_size 64 skipped" in caplog.text
    assert len(p.train) + len(p.test) == 14 and p.test and p.train
    assert set(p.train_names).isdisjoint(p.test_names)
    assert any(n.startswith("sub/") for n in p.train_names + p.test_names)
    assert all(img.shape[2] == 3 and img.dtype == np.uint8 for img in p.train + p.test)
    assert not p.test_whole
    # deterministic, and stable: adding files never moves an existing one across the split
    assert load_source(f"folder:{root}", 64).test_names == p.test_names
    for i in range(31):
        write_image(root / "more" / f"x{i}.png", 70, 70, seed=100 + i)
    q = load_source(f"folder:{root}", 64)
    assert set(p.test_names) <= set(q.test_names)
    assert set(p.train_names) <= set(q.train_names)


def test_folder_decodes_exact_pixels(tmp_path):
    root = tmp_path / "two"
    a = write_image(root / "a.png", 64, 80, seed=1)
    b = write_image(root / "b.png", 64, 64, seed=2, mode="L")
    p = load_source(f"folder:{root}", 64)
    got = dict(zip(p.train_names + p.test_names, p.train + p.test))
    np.testing.assert_array_equal(got["a.png"], a)
    np.testing.assert_array_equal(got["b.png"], b)


def test_folder_train_test_layout(tmp_path, caplog):
    root = tmp_path / "ds"
    for i in range(4):
        write_image(root / "train" / f"t{i}.png", 96, 100, seed=i)
    exact = write_image(root / "test" / "exact.png", 64, 64, seed=10)
    write_image(root / "test" / "big.png", 80, 100, seed=11)
    write_image(root / "test" / "small.png", 32, 64, seed=12)
    with caplog.at_level(logging.WARNING, logger="ablate.data.sources"):
        p = load_source(f"folder:{root}", 64)
    assert p.test_whole and p.skipped == 1
    assert p.test_names == ["big.png", "exact.png"] and len(p.train) == 4
    np.testing.assert_array_equal(p.test[1], exact)


def test_folder_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=f"{missing}.*does not exist"):
        load_source(f"folder:{missing}", 64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no images.*png"):
        load_source(f"folder:{tmp_path / 'empty'}", 64)
    f = tmp_path / "file.png"
    write_image(f, 10, 10)
    with pytest.raises(DataError, match="not a directory"):
        load_source(f"folder:{f}", 64)
    write_image(tmp_path / "smalls" / "a.png", 30, 30)
    write_image(tmp_path / "smalls" / "b.png", 30, 30)
    with pytest.raises(DataError, match="2 too small.*at least 64×64"):
        load_source(f"folder:{tmp_path / 'smalls'}", 64)


# --- cifar10 -----------------------------------------------------------------------------------


def test_cifar_layout_and_pixel_order(tmp_path):
    d = write_cifar(tmp_path, n_train=20, n_test=12, batches=2)
    for spec in (f"cifar10:{tmp_path}", f"cifar10:{d}"):
        p = load_source(spec, 128)
        assert len(p.train) == 40 and len(p.test) == 12
        assert p.native_size == 32 and p.test_whole and p.skipped == 0
        img = p.test[3]
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert img[5, 9].tolist() == [40, 72, 10]  # (y·8, x·8, index + seed 7)


class _Planted:
    """What an attacker would put in a batch file: unpickling it calls a function."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_cifar_batch_that_would_run_code_is_refused_unread(tmp_path):
    import pickle

    d = write_cifar(tmp_path, n_train=20, n_test=12, batches=1)
    marker = tmp_path / "ran"
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"x": _Planted(marker)}, f,
                    protocol=2)
    with pytest.raises(DataError, match=r"test_batch is not a CIFAR-10 python batch, refused "
                                        r"unread \(it names "):
        load_source(f"cifar10:{tmp_path}", 32)
    assert not marker.exists()  # nothing ran
    # the CLI says the same and exits 2
    from typer.testing import CliRunner

    from ablate.cli.app import app
    from conftest import write_tiny_study

    study = write_tiny_study(tmp_path / "s")
    r = CliRunner().invoke(app, ["data", str(study), "--set", f'data.source="cifar10:{tmp_path}"',
                                 "--set", "data.hr_size=32", "--set", "data.input_size=32",
                                 "--set", "data.prescale=1"])
    assert r.exit_code == 2 and "refused unread" in r.output, r.output
    assert not marker.exists()


def test_a_python2_cifar_batch_still_loads(tmp_path):
    """The real files were pickled by Python 2 with numpy.core.multiarray._reconstruct: the
    restricted unpickler admits that name (protocol 2, str keys read as bytes)."""
    import pickle
    import pickletools

    d = write_cifar(tmp_path, n_train=20, n_test=12, batches=1)
    raw = (d / "test_batch").read_bytes()
    names = {a for op, a, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert "numpy._core.multiarray _reconstruct" in names or \
        "numpy.core.multiarray _reconstruct" in names
    old = raw.replace(b"numpy._core.multiarray\n_reconstruct", b"numpy.core.multiarray\n_reconstruct")
    (d / "test_batch").write_bytes(old)
    assert len(load_source(f"cifar10:{tmp_path}", 32).test) == 12
    assert pickle.loads(old, encoding="bytes")[b"data"].shape == (12, 3072)


def test_cifar_missing_says_where_files_go(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*data_batch_1\.\.5.*download"):
        load_source(f"cifar10:{tmp_path / 'nothing'}", 32)


# --- downsample --------------------------------------------------------------------------------


def test_downsample_identity_and_antialias():
    x = torch.arange(128, dtype=torch.float32)
    g = (0.5 + 0.4 * torch.cos(2 * math.pi * 40 * x / 128)).expand(1, 3, 128, 128).contiguous()
    assert downsample(g, 128) is g
    d = downsample(g, 32)
    assert d.shape == (1, 3, 32, 32)
    # 40 cycles/image is far above the 32×32 Nyquist (16): it must not alias into the output
    aliased = F.interpolate(g, size=(32, 32), mode="bicubic", align_corners=False)
    assert aliased.std() > 0.15 and d.std() < 0.02
    assert torch.allclose(d.mean(), torch.tensor(0.5), atol=0.01)
    edge = torch.zeros(1, 3, 64, 64)
    edge[..., 32:] = 1.0
    up = downsample(edge, 96)
    assert up.min() >= 0 and up.max() <= 1


# --- TrainData ---------------------------------------------------------------------------------


def _dihedral(a: np.ndarray) -> list[np.ndarray]:
    out = []
    for t in (a, a.transpose(1, 0, 2)):
        out += [t, t[::-1], t[:, ::-1], t[::-1, ::-1]]
    return out


def test_epoch_crops_are_real_transformed_crops(tmp_path):
    photo = write_position_image(tmp_path / "p.png", 50, 70)
    data = TrainData.from_photos([photo, photo[:10]], 16, 64, "cpu")
    assert data.skipped == 1 and len(data) == 1
    crops = data.epoch(torch.Generator().manual_seed(3))
    assert crops.shape == (64, 3, 16, 16) and crops.dtype == torch.float32
    seen = set()
    for c in crops:
        u8 = (c * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        y0, x0 = int(u8[..., 0].min()), int(u8[..., 1].min())
        region = photo[y0 : y0 + 16, x0 : x0 + 16]
        match = [k for k, t in enumerate(_dihedral(region)) if np.array_equal(t, u8)]
        assert match, "crop is not a flip/rot90 of a contiguous region"
        seen.add(match[0])
    assert len(seen) == 8  # all flips / rotations occur


def test_epoch_determinism_and_photo_weighting():
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    small = np.full((20, 20, 3), 255, np.uint8)  # one crop position: 1/32,400 of them
    by_photo = TrainData.from_photos([big, small], 20, 2000, "cpu")  # default: each photo alike
    a = by_photo.epoch(torch.Generator().manual_seed(1))
    b = by_photo.epoch(torch.Generator().manual_seed(1))
    c = by_photo.epoch(torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert by_photo.draw_odds() == [0.5, 0.5]
    n_small = int((a == 1.0).flatten(1).all(1).sum())
    assert 900 < n_small < 1100  # binomial(2000, ½): ±4.5 σ
    by_area = TrainData.from_photos([big, small], 20, 2000, "cpu", sampling="area")
    n_small = int((by_area.epoch(torch.Generator().manual_seed(1)) == 1.0).flatten(1).all(1).sum())
    assert by_area.draw_odds()[1] == pytest.approx(1 / 32_762)  # 181² + 1 positions and n_small <= 2


def test_textureless_crops_are_never_drawn():
    from ablate.data.texture import crop_texture

    rng = np.random.default_rng(0)
    photo = np.full((64, 96, 3), 128, np.uint8)  # flat on the left, noise on the right
    photo[:, 48:] = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    flat = np.full((40, 40, 3), 90, np.uint8)  # no textured crop at all: left out
    data = TrainData.from_photos([photo, flat], 16, 600, "cpu", min_texture=2e-4,
                                 names=["half", "flat"])
    assert data.names == ["half"] and data.textureless == ["flat"]
    # usable corners: those whose crop reaches past x = 47 (33 … 80 of 0 … 80)
    assert data.usable_fraction == [pytest.approx(48 / 81)]
    crops = data.epoch(torch.Generator().manual_seed(0))
    u8 = (crops * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert min(crop_texture(c) for c in u8) >= 2e-4
    noise = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)  # every position usable
    noise[..., 2] = 3  # marks its crops
    mixed = TrainData.from_photos([noise, photo], 16, 400, "cpu", min_texture=2e-4)
    assert mixed.dense.tolist() == [True, False] and mixed.usable_fraction[0] == 1.0
    u8 = (mixed.epoch(torch.Generator().manual_seed(1)) * 255).round().to(torch.uint8)
    u8 = u8.permute(0, 2, 3, 1).numpy()
    assert min(crop_texture(c) for c in u8) >= 2e-4
    from_noise = sum(bool((c[..., 2] == 3).all()) for c in u8)
    assert 140 < from_noise < 260  # each photo equally likely: binomial(400, ½) ± 6 σ
    everything = TrainData.from_photos([photo], 16, 600, "cpu")  # min_texture 0: all positions
    u8 = (everything.epoch(torch.Generator().manual_seed(0)) * 255).round().to(torch.uint8)
    assert min(crop_texture(c) for c in u8.permute(0, 2, 3, 1).numpy()) == 0.0
    with pytest.raises(DataError, match="lower data.min_texture"):
        TrainData.from_photos([flat], 16, 8, "cpu", min_texture=1e-6)


def test_texture_map_equals_the_definition():
    from ablate.data.texture import crop_texture, texture_map

    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (2, 30, 41, 3), dtype=np.uint8)
    imgs[1, :, :20] = 7
    tex = texture_map(imgs, 12)
    assert tex.shape == (2, 19, 30)
    for n, y, x in [(0, 0, 0), (0, 18, 29), (1, 5, 3), (1, 10, 25), (0, 7, 13)]:
        crop = imgs[n, y:y + 12, x:x + 12]
        # by hand: BT.601 luma, squared steps to the right and downwards, averaged
        lum = crop.astype(float) @ np.array([65.481, 128.553, 24.966]) / 255 / 255
        steps = np.concatenate([np.diff(lum, axis=0).ravel(), np.diff(lum, axis=1).ravel()])
        assert tex[n, y, x] == pytest.approx(np.mean(steps**2), rel=1e-9)
        assert crop_texture(crop) == pytest.approx(np.mean(steps**2), rel=1e-12)
    assert tex[1, 0, 0] == 0.0  # inside the flat part
    # invariant under the flips/rotations training applies
    crop = imgs[0, 3:15, 4:16]
    assert all(crop_texture(t) == pytest.approx(crop_texture(crop)) for t in _dihedral(crop))


def test_test_crops_are_non_overlapping_tiles(tmp_path):
    photo = write_position_image(tmp_path / "p.png", 50, 70)  # 3 × 4 tiles of 16, centred
    other = np.full((40, 40, 3), 200, np.uint8)  # 2 × 2 tiles
    t = TestData.from_photos([photo, other], False, 16, 8, 100, seed=0, device="cpu",
                             names=["pos", "flat"])
    assert len(t) == 12 + 4 and sorted(set(t.photos)) == ["flat", "pos"]
    assert t.photos[:2] in (["pos", "flat"], ["flat", "pos"])  # one from each photo in turn
    u8 = (t.hr * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    corners = {(int(c[0, 0, 0]), int(c[0, 0, 1])) for c, n in zip(u8, t.photos) if n == "pos"}
    assert corners == {(1 + 16 * a, 3 + 16 * b) for a in range(3) for b in range(4)}
    capped = TestData.from_photos([photo, other], False, 16, 8, 5, seed=0, device="cpu",
                                  names=["pos", "flat"])
    assert sorted(capped.photos) == ["flat", "flat", "pos", "pos", "pos"] or \
        sorted(capped.photos) == ["flat", "flat", "flat", "pos", "pos"]


def test_build_data_bundled_on_device():
    cfg = DataConfig(hr_size=64, input_size=16, train_samples=24, test_samples=10, split_seed=4)
    train, test = build_data(cfg, "cpu")
    assert train.pixels.dtype == torch.uint8 and train.hr_size == 64 and len(train) == 8
    assert set(test.photos) <= set(BUNDLED_TEST) and len(set(test.photos)) == 7
    hr = train.epoch(torch.Generator().manual_seed(0))
    assert hr.shape == (24, 3, 64, 64) and 0 <= hr.min() and hr.max() <= 1
    assert test.hr.shape == (10, 3, 64, 64) and test.inputs.shape == (10, 3, 16, 16)
    assert torch.equal(test.inputs, downsample(test.hr, 16))
    assert test.truth(32) is test.truth(32) and test.truth(64) is test.hr
    assert test.has_truth(64) and not test.has_truth(128)
    with pytest.raises(ValueError, match="no ground truth at 128"):
        test.truth(128)
    # the test crops are fixed by split_seed, whatever the training seed
    _, again = build_data(cfg, "cpu")
    _, other = build_data(dataclasses.replace(cfg, split_seed=5), "cpu")
    assert torch.equal(test.hr, again.hr) and not torch.equal(test.hr, other.hr)


def test_test_crops_cover_every_held_out_photo():
    photos = [np.full((40, 40, 3), v, np.uint8) for v in (10, 20, 30)]
    t = TestData.from_photos(photos, False, 16, 8, 7, seed=0, device="cpu")
    values = sorted({round(float(x) * 255) for x in t.hr.flatten(1)[:, 0]})
    assert values == [10, 20, 30] and len(t) == 7


def test_build_data_whole_test_images(tmp_path):
    root = tmp_path / "ds"
    for i in range(2):
        write_image(root / "train" / f"t{i}.png", 80, 80, seed=i)
    exact = write_image(root / "test" / "a.png", 32, 32, seed=5)
    big = write_image(root / "test" / "b.png", 40, 48, seed=6)
    cfg = DataConfig(source=f"folder:{root}", hr_size=32, input_size=16, test_samples=64)
    _, test = build_data(cfg, "cpu")
    assert len(test) == 2  # one per test image, not 64 crops
    u8 = (test.hr * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(u8[0], exact)
    np.testing.assert_array_equal(u8[1], big[4:36, 8:40])  # centre crop


def test_build_data_cifar_has_no_truth_above_32(tmp_path):
    write_cifar(tmp_path, n_train=16, n_test=30, batches=1)
    # min_texture 0: the fixture's images are smooth ramps (a luma step of ~0.013 per pixel)
    cfg = DataConfig(source=f"cifar10:{tmp_path}", hr_size=128, input_size=32, test_samples=8,
                     min_texture=0.0)
    train, test = build_data(cfg, "cpu")
    assert train.hr_size == 32 and test.hr_size == 32 and len(test) == 8
    assert test.has_truth(32) and not test.has_truth(64)
    assert torch.equal(test.inputs, test.hr)  # nothing to downsample
    with pytest.raises(DataError, match="input_size 64 exceeds the HR side 32"):
        build_data(DataConfig(source=cfg.source, input_size=64), "cpu")


def test_bundled_without_scikit_learn_is_a_clear_error(monkeypatch):
    import sys

    from ablate.data import sources

    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn → ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    monkeypatch.setattr(sources, "_bundled_cache", {})
    with pytest.raises(DataError, match="pip install scikit-learn"):
        sources.load_source("bundled", 64)


def test_folder_split_is_made_among_usable_images(tmp_path):
    from PIL import Image

    from ablate.data.sources import FOLDER_TEST_FRACTION, _hash_fraction

    rng = np.random.default_rng(1)
    names = [f"img{i:02d}.png" for i in range(12)]
    lowest = min(names, key=_hash_fraction)  # the file the plain hash split would hold out
    for n in names:
        side = 20 if _hash_fraction(n) < FOLDER_TEST_FRACTION or n == lowest else 48
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(tmp_path / n)
    photos = load_source(f"folder:{tmp_path}", 32)  # every would-be held-out file is too small
    assert photos.test and photos.train
    assert all(min(p.shape[:2]) >= 32 for p in photos.test + photos.train)
    assert photos.skipped == sum(1 for n in names if _hash_fraction(n) < FOLDER_TEST_FRACTION or n == lowest)
