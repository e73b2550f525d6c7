"""Plain helpers shared by several test files (the fixtures built on them are in conftest.py).

Miniature dataset trees in the real layouts (MVTec, BTAD, raw VisA) and the checks of a loaded ImageSet,
used by test_data, test_visa, test_summary and test_embedded; an independent DDIM loop, the reference of
test_sampling (sampling.sample_ddim) and test_ddad (ddad.reconstruct).
"""
import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scoreviz import data as D

S = 20                                  # side of the miniature images
BOX = (slice(4, 10), slice(10, 16))     # where defects (bright squares) and their masks are drawn
STRAYS = (".DS_Store", "Thumbs.db", "desktop.ini", "notes.txt", "._000.png", "labels.csv")


# ----------------------------------------------------------------------------- miniature trees

def pixels(mode: str, seed: int, defect: bool) -> np.ndarray:
    """A dark noisy (S, S) or (S, S, 3) array; a bright square at BOX for defect images."""
    rng = np.random.default_rng(seed)
    shape = (S, S) if mode in ("L", "I;16") else (S, S, 3)
    top = 65535 if mode == "I;16" else 255
    arr = rng.uniform(0, 0.3 * top, shape)
    if defect:
        arr[BOX] = top
    return arr.astype(np.uint16 if mode == "I;16" else np.uint8)


def write_image(path: Path, mode: str, seed: int, defect: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels(mode, seed, defect)).save(path)


def write_mask(path: Path, value: int = 255, size: int = S) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size, size), np.uint8)
    m[BOX] = value
    Image.fromarray(m).save(path)


def write_strays(folder: Path) -> None:
    for name in STRAYS:
        (folder / name).write_bytes(b"\x00junk")


def make_mvtec(root: Path, cat: str, mode: str = "RGB", ext: str = ".png", normal: str = "good",
               defects=("crack", "scratch"), mask_ext: str = ".png", mask_suffix: str = "_mask",
               n_train: int = 4, n_good: int = 2, n_defect: int = 2) -> Path:
    """Write <root>/<cat>/{train/<normal>, test/<normal>, test/<defect>, ground_truth/<defect>}."""
    c = root / cat
    for i in range(n_train):
        write_image(c / "train" / normal / f"{i:03d}{ext}", mode, i)
    for i in range(n_good):
        write_image(c / "test" / normal / f"{i:03d}{ext}", mode, 100 + i)
    for d in defects:
        for i in range(n_defect):
            write_image(c / "test" / d / f"{i:03d}{ext}", mode, 200 + i, defect=True)
            write_mask(c / "ground_truth" / d / f"{i:03d}{mask_suffix}{mask_ext}")
    write_strays(c / "train" / normal)
    write_strays(c / "test" / defects[0])
    return c


def make_raw_visa(src: Path, cats=("candle", "pcb1")) -> Path:
    """Raw VisA: <cat>/Data/Images/{Normal,Anomaly}/*.JPG, Data/Masks/Anomaly/*.png (value 1), split csv."""
    rows = []
    for cat in cats:
        base = src / cat / "Data"
        for i in range(5):
            rel = f"{cat}/Data/Images/Normal/{i:04d}.JPG"
            write_image(src / rel, "RGB", i)
            rows.append([cat, "train" if i < 3 else "test", "normal", rel, ""])
        for i in range(2):
            rel = f"{cat}/Data/Images/Anomaly/{i:03d}.JPG"
            write_image(src / rel, "RGB", 50 + i, defect=True)
            write_mask(base / "Masks" / "Anomaly" / f"{i:03d}.png", value=1)
            rows.append([cat, "test", "anomaly", rel, f"{cat}/Data/Masks/Anomaly/{i:03d}.png"])
        write_strays(base / "Images" / "Normal")
    (src / "split_csv").mkdir(parents=True)
    with open(src / "split_csv" / "1cls.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["object", "split", "label", "image", "mask"])
        w.writerows(rows)
    return src


# ----------------------------------------------------------------------------- checks of a loaded set

def check_set(s: D.ImageSet, n: int, channels: int, size: int, masks: bool = True):
    assert len(s) == n
    assert s.images.shape == (n, channels, size, size) and s.images.dtype == torch.float32
    assert s.masks.shape == (n, size, size) and s.masks.dtype == torch.bool
    assert s.labels.dtype == torch.int64
    assert s.images.min() >= -1 and s.images.max() <= 1
    assert torch.equal(s.labels, torch.tensor([k != "good" for k in s.defect_types], dtype=torch.int64))
    assert torch.equal(s.masks.flatten(1).any(1), s.labels.bool() if masks else torch.zeros(n, dtype=bool))


def check_alignment(s: D.ImageSet, size: int):
    """Masks land on BOX scaled to `size`, and on the bright square of the image."""
    f = size // S
    want = torch.zeros(size, size, dtype=torch.bool)
    want[BOX[0].start * f:BOX[0].stop * f, BOX[1].start * f:BOX[1].stop * f] = True
    for img, m, lab in zip(s.images, s.masks, s.labels):
        if lab:
            assert torch.equal(m, want)
            assert img[:, m].mean() > 0.5 and img[:, ~m].mean() < -0.2


# ----------------------------------------------------------------------------- DDIM written out

def ddim_reference(eps_fn, alphas_cumprod, x, steps, eta, generators):
    """Hand-written DDIM loop (Song et al. 2021 Eq. 12) on python floats, one sample at a time.

    eps_fn(x_b, s, b) -> the noise prediction for sample b (x_b of shape (1, ...)) at DDPM step s; steps: the
    decreasing DDPM steps, abar = alphas_cumprod[s - 1] (1 at s = 0); generators: one per sample.
    """
    table = [1.0] + alphas_cumprod.tolist()
    out = []
    for b in range(x.shape[0]):
        xb, g = x[b:b + 1], generators[b]
        for s, s_next in zip(steps[:-1], steps[1:]):
            a, a2 = table[s], table[s_next]
            eps = eps_fn(xb, s, b)
            x0 = (xb - (1 - a) ** 0.5 * eps) / a**0.5
            c1 = eta * max((1 - a / a2) * (1 - a2) / (1 - a), 0.0) ** 0.5
            xb = a2**0.5 * x0 + max(1 - a2 - c1**2, 0.0) ** 0.5 * eps
            if c1 > 0:
                xb = xb + c1 * torch.randn(xb.shape[1:], generator=g)
        out.append(xb)
    return torch.cat(out)
