"""Real files for data tests: a folder of images and a CIFAR-10 batch in the real format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, h: int, w: int, seed: int = 0, mode: str = "RGB") -> np.ndarray:
    """A random-ish smooth+noisy image written with Pillow; returns the RGB uint8 it decodes to."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 60 * np.sin(xx / (3 + seed % 5)) + 40 * np.cos(yy / 7.0)
    img = np.clip(base[..., None] + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        Image.fromarray(img[..., 0]).save(path)
        return np.repeat(img[..., :1], 3, axis=2)
    if mode == "RGBA":
        rgba = np.concatenate([img, np.full((h, w, 1), 200, np.uint8)], axis=2)
        Image.fromarray(rgba, "RGBA").save(path)
        return img
    Image.fromarray(img).save(path)
    return img


def write_position_image(path: Path, h: int, w: int) -> np.ndarray:
    """An image whose pixel (y, x) is (y, x, 7): crops reveal where they came from."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(h)[:, None]
    img[..., 1] = np.arange(w)[None, :]
    img[..., 2] = 7
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return img


def cifar_images(n: int, seed: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8: pixel (y, x) of image i is (y·8, x·8, i mod 256) plus a seed offset."""
    img = np.zeros((n, 32, 32, 3), np.uint8)
    img[..., 0] = (np.arange(32) * 8)[None, :, None]
    img[..., 1] = (np.arange(32) * 8)[None, None, :]
    img[..., 2] = ((np.arange(n) + seed) % 256)[:, None, None]
    return img


def write_cifar_batch(path: Path, images: np.ndarray) -> None:
    """The CIFAR-10 python layout: dict with bytes keys; data rows = 1024 R, 1024 G, 1024 B."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {
        b"batch_label": b"fake batch",
        b"labels": [i % 10 for i in range(len(images))],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_cifar(root: Path, n_train: int = 20, n_test: int = 12, batches: int = 2) -> Path:
    """root/cifar-10-batches-py with `batches` training batches and a test batch."""
    d = root / "cifar-10-batches-py"
    for b in range(1, batches + 1):
        write_cifar_batch(d / f"data_batch_{b}", cifar_images(n_train, seed=100 * b))
    write_cifar_batch(d / "test_batch", cifar_images(n_test, seed=7))
    return d
