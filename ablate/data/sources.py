"""Where the high-resolution (HR) photos come from: `load_source(source, hr_size) -> Photos`.

Three sources, named by `DataConfig.source`:

``bundled``
    Natural photos shipped inside the scikit-image, scikit-learn and matplotlib wheels;
    nothing is downloaded. The files are read straight from the installed packages (never
    through `skimage.data`'s pooch fetcher, which may try the network). Synthetic images
    (chessboard, color wheel, logos, phantom), text (page, text), binary (horse), tiny ones
    (microaneurysms, lfw faces), blurred or microscopy frames (cell, clock_motion) and
    maps are left out. The split is by photo, fixed (`BUNDLED_TEST`); the stereo pair
    motorcycle_left/right stays on one side, since the two views are near-duplicates.
    Training photos are all colour: an RGB model trained on gray copied into three channels
    learns a different colour statistics. The held-out side adds three grayscale photos
    (camera, coins, brick; read as R = G = B), which test the luma structure that SR recovers
    and that the SR literature's Y-PSNR measures: 7 held-out photos instead of 3.

``folder:PATH``
    Every image under PATH, recursively (`IMAGE_EXTENSIONS`, decoded with Pillow, EXIF
    orientation applied, converted to RGB). If PATH/train and PATH/test both exist they are the
    split, and test images are used whole (`Photos.test_whole`: exactly `hr_size` → whole,
    larger → centre crop). Otherwise the split is by file and stable: a file is held out when
    the SHA-1 of its relative path (posix) falls in the lowest `FOLDER_TEST_FRACTION` of the
    hash range, so adding images never moves an existing one between train and test; if no file
    qualifies, the one with the smallest hash is held out.

``cifar10:PATH``
    The python-pickle CIFAR-10 (``cifar-10-batches-py``: ``data_batch_1..5``, ``test_batch``);
    PATH is that folder or its parent. 32×32 images, so `Photos.native_size = 32`: there is no
    ground truth above 32 (ablate.data.dataset records such results as missing). No download.

`prescale` > 1 first downscales every decoded photo by that factor (antialiased bicubic, the
resampler of `ablate.imaging.downsample`, rounded back to uint8): `DataConfig.prescale`, "auto"
meaning `BUNDLED_PRESCALE` for bundled and 1 elsewhere (spec/source.py `resolve_prescale`).
CIFAR-10 takes only 1. Images smaller than `hr_size` (either side) after it are skipped and counted
(`Photos.skipped`, logged).
Problems the user must fix raise `DataError`, naming the path and what was expected.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ablate.spec.source import DataSource, resolve_prescale

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data source that cannot be used as given; the message says what to fix."""


@dataclass
class Photos:
    """Decoded photos of one source, split by photo."""

    train: list[np.ndarray]  # each uint8 (H, W, 3)
    test: list[np.ndarray]  # each uint8 (H, W, 3), held out
    test_whole: bool  # test images are used whole (centre crop when larger than hr_size)
    native_size: int | None  # side of every image when the source has one fixed size (CIFAR)
    skipped: int  # images smaller than hr_size, left out
    description: str  # one line for logs and `ablate trial`
    train_names: list[str] = field(default_factory=list)  # same order as `train`
    test_names: list[str] = field(default_factory=list)  # same order as `test`


# ---------------------------------------------------------------------------------------------
# bundled
# ---------------------------------------------------------------------------------------------

# name → (package, file inside the package's data folder). All offline.
BUNDLED_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "astronaut.png"),  # 512×512
    "chelsea": ("skimage", "chelsea.png"),  # 300×451
    "coffee": ("skimage", "coffee.png"),  # 400×600
    "rocket": ("skimage", "rocket.jpg"),  # 427×640
    "motorcycle_left": ("skimage", "motorcycle_left.png"),  # 500×741
    "motorcycle_right": ("skimage", "motorcycle_right.png"),  # 500×741
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),  # 872×1000
    "retina": ("skimage", "retina.jpg"),  # 1411×1411
    "immunohistochemistry": ("skimage", "ihc.png"),  # 512×512
    "china": ("sklearn", "china.jpg"),  # 427×640
    "flower": ("sklearn", "flower.jpg"),  # 427×640
    "grace_hopper": ("matplotlib", "grace_hopper.jpg"),  # 600×512, a portrait
    "camera": ("skimage", "camera.png"),  # 512×512 gray: the cameraman
    "coins": ("skimage", "coins.png"),  # 303×384 gray: sharp edges, engraved detail
    "brick": ("skimage", "brick.png"),  # 512×512 gray: a regular texture
}
# Held out: a cat's fur (texture), a cup on a table (smooth shading and edges), petals
# (colour), a face and uniform (portrait), and the three grayscale photos (see the module
# docstring). Bicubic ×4 on their 128×128 tiles at prescale 1.5 scores 27.6 dB Y-PSNR, ×2
# 30.3 dB (DIV2K validation: 26.7 / 31.0). Every other photo trains. The smallest held-out
# side is chelsea's 300 (200 at prescale 1.5), which bounds hr_size.
BUNDLED_TEST: tuple[str, ...] = (
    "chelsea", "coffee", "flower", "grace_hopper", "camera", "coins", "brick",
)

_bundled_cache: dict[str, np.ndarray] = {}


def _package_data_dir(package: str) -> Path:
    if package == "skimage":
        import skimage.data

        return Path(skimage.data.__file__).parent
    if package == "matplotlib":  # located, not imported (importing matplotlib costs ~0.3 s)
        import importlib.util

        spec = importlib.util.find_spec("matplotlib")
        if spec is None or not spec.submodule_search_locations:
            raise DataError(
                "bundled source: the photo grace_hopper ships inside matplotlib, which is not "
                "installed here; `pip install matplotlib` (no download at run time), or use "
                "source = 'folder:PATH'"
            )
        return Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "sample_data"
    try:
        import sklearn.datasets
    except ImportError:  # a bare GPU node may have scikit-image but not scikit-learn
        raise DataError(
            "bundled source: the photos china and flower ship inside scikit-learn, which is not "
            "installed here; `pip install scikit-learn` (no download at run time: the photos are "
            "in its wheel), or use source = 'folder:PATH'"
        ) from None
    return Path(sklearn.datasets.__file__).parent / "images"


_PACKAGE_NAMES = {"skimage": "scikit-image", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}


def _bundled_photo(name: str, prescale: float = 1.0) -> np.ndarray:
    """One bundled photo, decoded (and prescaled) once per process (read-only array)."""
    key = name if prescale == 1 else f"{name}@{prescale!r}"
    if key not in _bundled_cache:
        if prescale != 1:
            img = prescale_photo(_bundled_photo(name), prescale)
        else:
            package, filename = BUNDLED_PHOTOS[name]
            path = _package_data_dir(package) / filename
            if not path.is_file():
                raise DataError(
                    f"bundled source: {path} is missing from the installed {package}; "
                    f"reinstall {_PACKAGE_NAMES[package]} or use source = 'folder:PATH'"
                )
            img = _read_rgb(path)
        img.flags.writeable = False
        _bundled_cache[key] = img
    return _bundled_cache[key]


def prescale_photo(img: np.ndarray, factor: float) -> np.ndarray:
    """uint8 (H, W, 3) downscaled by `factor` (sides rounded) with antialiased bicubic."""
    if factor == 1:
        return img
    import torch
    import torch.nn.functional as F

    h, w = img.shape[:2]
    size = (max(1, round(h / factor)), max(1, round(w / factor)))
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float().div_(255.0)
    out = F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=True)
    out = out[0].permute(1, 2, 0).mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(out.numpy())


def _load_bundled(hr_size: int, prescale: float = 1.0) -> Photos:
    train, test, train_names, test_names, skipped = [], [], [], [], 0
    for name in BUNDLED_PHOTOS:
        img = _bundled_photo(name, prescale)
        if min(img.shape[:2]) < hr_size:
            log.info("bundled: %s %s is smaller than hr_size %d", name, img.shape[:2], hr_size)
            skipped += 1
            continue
        held_out = name in BUNDLED_TEST
        (test if held_out else train).append(img)
        (test_names if held_out else train_names).append(name)
    if not train or not test:
        limit = min(round(s / prescale) for n in BUNDLED_TEST
                    for s in _bundled_photo(n).shape[:2])
        raise DataError(
            f"bundled source: hr_size {hr_size} leaves {len(train)} training and {len(test)} "
            f"held-out photos; the held-out photos ({', '.join(BUNDLED_TEST)}) need "
            f"hr_size ≤ {limit} at prescale {prescale:g} — lower data.hr_size or "
            "data.prescale, or use source = 'folder:PATH'"
        )
    if skipped:
        log.warning("bundled: %d photos smaller than hr_size %d skipped", skipped, hr_size)
    return Photos(
        train=train,
        test=test,
        test_whole=False,
        native_size=None,
        skipped=skipped,
        description=(
            f"bundled (prescale {prescale:g}): {len(train)} training photos, {len(test)} held "
            f"out ({', '.join(test_names)}), {skipped} skipped"
        ),
        train_names=train_names,
        test_names=test_names,
    )


# ---------------------------------------------------------------------------------------------
# folder:PATH
# ---------------------------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_TEST_FRACTION = 0.1  # share of files held out by the hash split


def _read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to uint8 (H, W, 3) RGB (EXIF orientation applied)."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit gray: scale to 8 bits
            arr = np.asarray(im, dtype=np.float64)
            peak = 65535.0 if arr.max() > 255 else 255.0
            arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
            return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def _image_files(root: Path) -> list[Path]:
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _hash_fraction(rel: str) -> float:
    """A stable number in [0, 1) from a relative path."""
    return int(hashlib.sha1(rel.encode("utf-8")).hexdigest()[:15], 16) / 16**15


def _large_enough(files: list[Path], hr_size: int, prescale: float = 1.0) -> tuple[list[Path], int]:
    """The files whose header says both sides are ≥ hr_size (after prescale); and how many
    were not."""
    from PIL import Image

    keep, dropped = [], 0
    for path in files:
        try:
            with Image.open(path) as im:
                ok = min(round(side / prescale) for side in im.size) >= hr_size
        except Exception:  # noqa: BLE001 — unreadable: dropped here, like a small one
            ok = False
        if ok:
            keep.append(path)
        else:
            dropped += 1
    return keep, dropped


def _read_all(files: list[Path], root: Path, hr_size: int,
              prescale: float = 1.0) -> tuple[list, list, int, int]:
    """Decode (and prescale) `files`; drop (and count) unreadable ones and those smaller than
    hr_size."""
    images, names, small, unreadable = [], [], 0, 0
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            img = prescale_photo(_read_rgb(path), prescale)
        except Exception as exc:  # noqa: BLE001 — any decoder failure means "not an image"
            log.warning("folder: cannot read %s (%s), skipped", path, exc)
            unreadable += 1
            continue
        if min(img.shape[:2]) < hr_size:
            log.debug("folder: %s %s is smaller than hr_size %d", rel, img.shape[:2], hr_size)
            small += 1
            continue
        images.append(img)
        names.append(rel)
    return images, names, small, unreadable


def _load_folder(spec: str, hr_size: int, prescale: float = 1.0) -> Photos:
    root = Path(spec).expanduser()
    expected = (
        f"a folder of images ({', '.join(IMAGE_EXTENSIONS)}), searched recursively, "
        "or one with train/ and test/ subfolders"
    )
    if not spec:
        raise DataError("folder source: no path given; write source = 'folder:PATH'")
    if not root.exists():
        raise DataError(f"folder source: {root} does not exist; expected {expected}")
    if not root.is_dir():
        raise DataError(f"folder source: {root} is not a directory; expected {expected}")

    layout = (root / "train").is_dir() and (root / "test").is_dir()
    if layout:
        train_files, test_files = _image_files(root / "train"), _image_files(root / "test")
        if not train_files or not test_files:
            empty = root / ("train" if not train_files else "test")
            raise DataError(f"folder source: {empty} holds no images; expected {expected}")
    else:
        files = _image_files(root)
        if not files:
            raise DataError(f"folder source: {root} holds no images; expected {expected}")
        if len(files) < 2:
            raise DataError(
                f"folder source: {root} holds a single image ({files[0].name}); at least two "
                "are needed to hold one out, or use train/ and test/ subfolders"
            )
        # the split is made among the images large enough to use (read from the headers,
        # no decode), so small files can never leave the held-out side empty
        files, small_pre = _large_enough(files, hr_size, prescale)
        if len(files) < 2:
            raise DataError(
                f"folder source: {root} has {len(files)} usable image(s), {small_pre} too small "
                f"or unreadable; each must be at least {hr_size}×{hr_size}, and two are needed "
                "to hold one out"
            )
        frac = {p: _hash_fraction(p.relative_to(root).as_posix()) for p in files}
        held = {p for p in files if frac[p] < FOLDER_TEST_FRACTION}
        if not held:  # too few files for the fraction: hold out the smallest hash
            held = {min(files, key=frac.__getitem__)}
        if len(held) == len(files):  # every file hashed low: keep the largest hash for training
            held.discard(max(files, key=frac.__getitem__))
        test_files = [p for p in files if p in held]
        train_files = [p for p in files if p not in held]

    train_root = root / "train" if layout else root
    test_root = root / "test" if layout else root
    train, train_names, small_tr, bad_tr = _read_all(train_files, train_root, hr_size, prescale)
    test, test_names, small_te, bad_te = _read_all(test_files, test_root, hr_size, prescale)
    skipped, unreadable = small_tr + small_te + (0 if layout else small_pre), bad_tr + bad_te
    if skipped:
        log.warning("folder %s: %d images smaller than hr_size %d skipped", root, skipped, hr_size)
    if not train or not test:
        side = "training" if not train else "held-out"
        raise DataError(
            f"folder source: {root} has no usable {side} images at hr_size {hr_size} "
            f"({skipped} too small, {unreadable} unreadable); expected {expected}, "
            f"each at least {hr_size}×{hr_size}"
        )
    how = "train/ and test/ subfolders" if layout else f"hash split ({FOLDER_TEST_FRACTION:.0%})"
    return Photos(
        train=train,
        test=test,
        test_whole=layout,
        native_size=None,
        skipped=skipped,
        description=(
            f"folder {root}: {len(train)} training images, {len(test)} held out by {how}, "
            f"{skipped} smaller than {hr_size} skipped"
            + (f", prescale {prescale:g}" if prescale != 1 else "")
            + (f", {unreadable} unreadable" if unreadable else "")
        ),
        train_names=train_names,
        test_names=test_names,
    )


# ---------------------------------------------------------------------------------------------
# cifar10:PATH
# ---------------------------------------------------------------------------------------------

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


# What a CIFAR-10 python batch may name when unpickled: numpy arrays (rebuilt from their
# class, dtype and bytes) and the bytes codec of protocol-2 pickles written by Python 3. Any
# other global — a function to call, a class to build — is refused before anything runs.
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    """pickle.Unpickler that admits only what CIFAR-10 batches hold: dicts, lists, bytes, str,
    numbers and numpy arrays (`_CIFAR_GLOBALS`); a data file can then not run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch "
                                         "does not hold")
        if module == "numpy.core.multiarray":  # numpy ≥ 2 moved it; the old name is a shim
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def _cifar_batch(path: Path) -> np.ndarray:
    """One pickle batch → uint8 (n, 32, 32, 3). Rows are 1024 R, 1024 G, 1024 B, row-major.
    Read with `_CifarUnpickler`: a file that names anything else is refused (DataError)."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"cifar10 source: {path} is not a CIFAR-10 python batch, refused "
                        f"unread ({e})") from None
    data = d.get(b"data", d.get("data")) if isinstance(d, dict) else None
    if data is None:
        raise DataError(f"cifar10 source: {path} is not a CIFAR-10 python batch (no 'data' key)")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"cifar10 source: {path} holds data of shape {data.shape}, expected (n, 3072)"
        )
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _load_cifar10(spec: str, hr_size: int, prescale: float = 1.0) -> Photos:
    given = Path(spec).expanduser()
    where = (
        f"expected {given / CIFAR_DIR}/{{data_batch_1..5, test_batch}} (or PATH naming the "
        f"{CIFAR_DIR} folder itself): download and extract {CIFAR_URL} there; "
        "ablate does not download"
    )
    if not spec:
        raise DataError(f"cifar10 source: no path given; write source = 'cifar10:PATH', {where}")
    if prescale != 1:
        raise DataError(f"cifar10 source: images are 32×32 and cannot be prescaled (data.prescale "
                        f"= {prescale:g}); set data.prescale = 1 or \"auto\"")
    candidates = [given, given / CIFAR_DIR]
    root = next((c for c in candidates if (c / CIFAR_TEST).is_file()), None)
    if root is None:
        raise DataError(f"cifar10 source: no CIFAR-10 batches at {given}; {where}")
    batches = [root / b for b in CIFAR_TRAIN if (root / b).is_file()]
    if not batches:
        raise DataError(f"cifar10 source: {root} has {CIFAR_TEST} but no data_batch_*; {where}")
    if len(batches) < len(CIFAR_TRAIN):
        log.warning("cifar10 %s: only %d of 5 training batches found", root, len(batches))
    train = np.concatenate([_cifar_batch(b) for b in batches])
    test = _cifar_batch(root / CIFAR_TEST)
    if hr_size > 32:
        log.info("cifar10: images are 32×32, so HR is 32 (hr_size %d is not reached)", hr_size)
    return Photos(
        train=list(train),
        test=list(test),
        test_whole=True,
        native_size=32,
        skipped=0,
        description=(
            f"cifar10 {root}: {len(train)} training images, {len(test)} test images, 32×32 "
            "(no ground truth above 32)"
        ),
        train_names=[f"train[{i}]" for i in range(len(train))],
        test_names=[f"{CIFAR_TEST}[{i}]" for i in range(len(test))],
    )


# ---------------------------------------------------------------------------------------------


def load_source(source: "str | DataSource", hr_size: int, prescale: float | str = 1.0) -> Photos:
    """Decode the photos of `source` ("bundled" | "folder:PATH" | "cifar10:PATH", or its
    parsed `DataSource`), each downscaled by `prescale` first ("auto": `resolve_prescale`)."""
    try:
        src = DataSource.parse(source) if isinstance(source, str) else source
    except ValueError as e:
        raise DataError(f"data.source: {e}") from None
    prescale = resolve_prescale(str(src), prescale)
    if prescale < 1:
        raise DataError(f"data.prescale must be ≥ 1 (a downscale factor), got {prescale:g}")
    if src.kind == "folder":
        return _load_folder(src.path, hr_size, prescale)
    if src.kind == "cifar10":
        return _load_cifar10(src.path, hr_size, prescale)
    return _load_bundled(hr_size, prescale)
