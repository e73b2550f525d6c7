"""Tests for scoreviz.data: miniature dataset trees in each real layout, hazelnut_toy, embedded data."""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scoreviz import data as D

HAZELNUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hazelnut_toy"
S = 20                                  # side of the miniature images
BOX = (slice(4, 10), slice(10, 16))     # where defects (bright squares) and their masks are drawn
STRAYS = (".DS_Store", "Thumbs.db", "desktop.ini", "notes.txt", "._000.png", "labels.csv")


# ----------------------------------------------------------------------------- miniature trees

def _pixels(mode: str, seed: int, defect: bool) -> np.ndarray:
    """A dark noisy (S, S) or (S, S, 3) array; a bright square at BOX for defect images."""
    rng = np.random.default_rng(seed)
    shape = (S, S) if mode in ("L", "I;16") else (S, S, 3)
    top = 65535 if mode == "I;16" else 255
    arr = rng.uniform(0, 0.3 * top, shape)
    if defect:
        arr[BOX] = top
    return arr.astype(np.uint16 if mode == "I;16" else np.uint8)


def _write_image(path: Path, mode: str, seed: int, defect: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(mode, seed, defect)).save(path)


def _write_mask(path: Path, value: int = 255, size: int = S) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size, size), np.uint8)
    m[BOX] = value
    Image.fromarray(m).save(path)


def _write_strays(folder: Path) -> None:
    for name in STRAYS:
        (folder / name).write_bytes(b"\x00junk")


def make_mvtec(root: Path, cat: str, mode: str = "RGB", ext: str = ".png", normal: str = "good",
               defects=("crack", "scratch"), mask_ext: str = ".png", mask_suffix: str = "_mask",
               n_train: int = 4, n_good: int = 2, n_defect: int = 2) -> Path:
    """Write <root>/<cat>/{train/<normal>, test/<normal>, test/<defect>, ground_truth/<defect>}."""
    c = root / cat
    for i in range(n_train):
        _write_image(c / "train" / normal / f"{i:03d}{ext}", mode, i)
    for i in range(n_good):
        _write_image(c / "test" / normal / f"{i:03d}{ext}", mode, 100 + i)
    for d in defects:
        for i in range(n_defect):
            _write_image(c / "test" / d / f"{i:03d}{ext}", mode, 200 + i, defect=True)
            _write_mask(c / "ground_truth" / d / f"{i:03d}{mask_suffix}{mask_ext}")
    _write_strays(c / "train" / normal)
    _write_strays(c / "test" / defects[0])
    return c


@pytest.fixture
def mvtec(tmp_path):
    root = tmp_path / "mvtec"
    make_mvtec(root, "bottle")                                  # RGB png
    make_mvtec(root, "grid", mode="L", defects=("bent",))       # grayscale
    make_mvtec(root, "screw", mode="I;16", defects=("thread",))  # 16-bit grayscale png
    return root


def _check_set(s: D.ImageSet, n: int, channels: int, size: int, masks: bool = True):
    assert len(s) == n
    assert s.images.shape == (n, channels, size, size) and s.images.dtype == torch.float32
    assert s.masks.shape == (n, size, size) and s.masks.dtype == torch.bool
    assert s.labels.dtype == torch.int64
    assert s.images.min() >= -1 and s.images.max() <= 1
    assert torch.equal(s.labels, torch.tensor([k != "good" for k in s.defect_types], dtype=torch.int64))
    assert torch.equal(s.masks.flatten(1).any(1), s.labels.bool() if masks else torch.zeros(n, dtype=bool))


def _check_alignment(s: D.ImageSet, size: int):
    """Masks land on BOX scaled to `size`, and on the bright square of the image."""
    f = size // S
    want = torch.zeros(size, size, dtype=torch.bool)
    want[BOX[0].start * f:BOX[0].stop * f, BOX[1].start * f:BOX[1].stop * f] = True
    for img, m, lab in zip(s.images, s.masks, s.labels):
        if lab:
            assert torch.equal(m, want)
            assert img[:, m].mean() > 0.5 and img[:, ~m].mean() < -0.2


# ----------------------------------------------------------------------------- folder layouts

def test_mvtec_rgb_counts_labels_alignment(mvtec):
    train = D.load("mvtec", "bottle", "train", root=mvtec, size=40)
    _check_set(train, 4, 3, 40)
    assert train.defect_types == ["good"] * 4 and not train.masks.any()
    test = D.load("mvtec", "bottle", "test", root=mvtec, size=40)
    _check_set(test, 6, 3, 40)
    assert test.defect_types == ["good"] * 2 + ["crack"] * 2 + ["scratch"] * 2
    assert test.labels.tolist() == [0, 0, 1, 1, 1, 1]
    assert test.paths[2].endswith("test/crack/000.png")
    _check_alignment(test, 40)


def test_mvtec_downscale_masks_stay_binary_and_near_box(mvtec):
    test = D.load_folder(mvtec, "bottle", "test", size=10)
    ys, xs = torch.nonzero(test.masks[2], as_tuple=True)
    assert ys.min() >= 1 and ys.max() <= 5 and xs.min() >= 4 and xs.max() <= 8  # BOX / 2, +-1 px
    assert test.masks.dtype == torch.bool


def test_grayscale_and_16bit_keep_one_channel(mvtec):
    gray = D.load("mvtec", "grid", "test", root=mvtec, size=40)
    _check_set(gray, 4, 1, 40)
    _check_alignment(gray, 40)
    deep = D.load_folder(mvtec, "screw", "test", size=None)          # None: native size
    _check_set(deep, 4, 1, S)
    raw = np.asarray(Image.open(mvtec / "screw/test/good/000.png"), dtype=np.float64)
    assert raw.max() > 255                                        # really a 16-bit file
    np.testing.assert_allclose(deep.images[0, 0].numpy(), raw / 65535 * 2 - 1, atol=1e-5)
    assert deep.images[2, 0][BOX].min() == 1.0                    # 65535 -> +1, not clipped 255-scale
    assert D.load("mvtec", "grid", "train", root=mvtec, size=8, channels=3).images.shape == (4, 3, 8, 8)
    assert D.load("mvtec", "bottle", "train", root=mvtec, size=8, channels=1).images.shape == (4, 1, 8, 8)


def test_palette_rgba_and_mixed_modes_become_rgb(tmp_path):
    root = tmp_path / "mixed"
    c = make_mvtec(root, "cat", mode="L", n_train=2)
    Image.fromarray(_pixels("RGB", 7, False)).convert("P").save(c / "train/good/010.png")
    Image.fromarray(_pixels("RGB", 8, False)).convert("RGBA").save(c / "train/good/011.png")
    s = D.load_folder(root, "cat", "train", size=S)
    _check_set(s, 4, 3, S)
    assert torch.equal(s.images[0, 0], s.images[0, 2])            # gray image replicated to RGB


def test_stray_files_are_ignored(mvtec):
    s = D.load_folder(mvtec, "bottle", "train", size=S)
    assert len(s) == 4 and not any(Path(p).name in STRAYS for p in s.paths)


def test_mpdd_jpg_and_mask_without_suffix(tmp_path):
    root = tmp_path / "MPDD"
    make_mvtec(root, "bracket_black", ext=".JPG", defects=("hole",), mask_suffix="", mask_ext=".bmp")
    make_mvtec(root, "tubes", ext=".jpg", defects=("anomalous",))
    s = D.load("mpdd", "bracket_black", "test", root=root, size=40)
    _check_set(s, 4, 3, 40)
    _check_alignment(s, 40)
    assert s.defect_types == ["good", "good", "hole", "hole"]
    assert len(D.load("mpdd", "tubes", "train", root=root, size=16)) == 4


def test_btad_ok_ko_with_bmp_masks(tmp_path):
    root = tmp_path / "BTAD"
    make_mvtec(root, "01", ext=".bmp", normal="ok", defects=("ko",), mask_ext=".png", mask_suffix="")
    make_mvtec(root, "03", ext=".png", mode="L", normal="ok", defects=("ko",), mask_ext=".bmp",
               mask_suffix="")
    for cat, ch in (("01", 3), ("03", 1)):
        train = D.load("btad", cat, "train", root=root, size=40)
        _check_set(train, 4, ch, 40)
        test = D.load("btad", cat, "test", root=root, size=40)
        _check_set(test, 4, ch, 40)
        assert test.defect_types == ["good", "good", "ko", "ko"]
        _check_alignment(test, 40)
    with pytest.raises(D.DatasetError, match="good"):              # mvtec layout expects good/
        D.load_folder(root, "01", "train", layout="mvtec")


def _make_raw_visa(src: Path, cats=("candle", "pcb1")) -> Path:
    """Raw VisA: <cat>/Data/Images/{Normal,Anomaly}/*.JPG, Data/Masks/Anomaly/*.png (value 1), split csv."""
    rows = []
    for cat in cats:
        base = src / cat / "Data"
        for i in range(5):
            rel = f"{cat}/Data/Images/Normal/{i:04d}.JPG"
            _write_image(src / rel, "RGB", i)
            rows.append([cat, "train" if i < 3 else "test", "normal", rel, ""])
        for i in range(2):
            rel = f"{cat}/Data/Images/Anomaly/{i:03d}.JPG"
            _write_image(src / rel, "RGB", 50 + i, defect=True)
            _write_mask(base / "Masks" / "Anomaly" / f"{i:03d}.png", value=1)
            rows.append([cat, "test", "anomaly", rel, f"{cat}/Data/Masks/Anomaly/{i:03d}.png"])
        _write_strays(base / "Images" / "Normal")
    (src / "split_csv").mkdir(parents=True)
    with open(src / "split_csv" / "1cls.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["object", "split", "label", "image", "mask"])
        w.writerows(rows)
    return src


def test_visa_prepare_then_load(tmp_path):
    src = _make_raw_visa(tmp_path / "VisA_raw")
    dst = D.prepare_visa(src, tmp_path / "VisA", progress=False)
    gt = np.asarray(Image.open(dst / "candle/ground_truth/bad/000.png"))
    assert set(np.unique(gt)) == {0, 255}                          # 1 -> 255
    assert not list(dst.rglob(".*.part"))
    for cat in ("candle", "pcb1"):
        train = D.load("visa", cat, "train", root=dst, size=40)
        _check_set(train, 3, 3, 40)
        test = D.load("visa", cat, "test", root=dst, size=40)
        _check_set(test, 4, 3, 40)
        assert test.defect_types == ["good", "good", "bad", "bad"]
        _check_alignment(test, 40)
    D.prepare_visa(src, dst, progress=False)                       # re-running is harmless
    assert len(D.load("visa", "candle", "test", root=dst, size=8)) == 4
    with pytest.raises(D.DatasetError, match="prepare-visa"):
        D.load("visa", "candle", "test", root=src)
    assert "prepare-visa" in D.summarize(src)


def test_cache_reuses_and_clears(mvtec):
    D.clear_cache()
    a = D.load_folder(mvtec, "bottle", "test", size=S)
    assert len(D._CACHE) == 6 + 4                                  # 6 images + 4 masks
    b = D.load_folder(mvtec, "bottle", "test", size=S)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert D.load_folder(mvtec, "bottle", "test", size=12).images.shape[-1] == 12
    D.clear_cache()
    assert not D._CACHE


def test_subset_and_repr(mvtec):
    s = D.load_folder(mvtec, "bottle", "test", size=8)
    sub = s.subset(s.labels.bool())
    assert len(sub) == 4 and sub.defect_types == ["crack", "crack", "scratch", "scratch"]
    assert s.subset([0, 5]).paths == [s.paths[0], s.paths[5]]
    assert len(s.subset(slice(1, 3))) == 2
    assert "n=6" in repr(s)


# ----------------------------------------------------------------------------- bad input

def test_missing_root(tmp_path):
    with pytest.raises(D.DatasetError, match="nowhere"):
        D.load_folder(tmp_path / "nowhere", "bottle", "train")
    with pytest.raises(D.DatasetError, match="root"):
        D.load("mvtec", "bottle", "train")


def test_missing_category_lists_existing(mvtec):
    with pytest.raises(D.DatasetError) as e:
        D.load_folder(mvtec, "cable", "train")
    assert "cable" in str(e.value) and "bottle" in str(e.value) and "grid" in str(e.value)
    with pytest.raises(D.DatasetError, match="bottle"):
        D.load_folder(mvtec, None, "train")                        # root is not a category folder


def test_unknown_dataset_category_split(mvtec):
    with pytest.raises(D.DatasetError, match="mvtec"):
        D.categories("imagenet")
    with pytest.raises(D.DatasetError, match="zipper"):
        D.load("mvtec", "zippr", "train", root=mvtec)
    with pytest.raises(D.DatasetError, match="valid"):
        D.load_folder(mvtec, "bottle", "valid")
    assert len(D.categories("mvtec")) == 15 and len(D.categories("mpdd")) == 6
    assert len(D.categories("visa")) == 12 and D.categories("btad") == ("01", "02", "03")


def test_missing_split_folder(mvtec):
    shutil.rmtree(mvtec / "bottle" / "test")
    with pytest.raises(D.DatasetError, match=str(mvtec / "bottle" / "test")):
        D.load_folder(mvtec, "bottle", "test")


def test_empty_folder(mvtec):
    for p in (mvtec / "bottle/test/crack").glob("*.png"):
        p.unlink()
    with pytest.raises(D.DatasetError, match="crack.*no images"):
        D.load_folder(mvtec, "bottle", "test")


def test_defect_image_without_mask(mvtec):
    (mvtec / "bottle/ground_truth/scratch/001_mask.png").unlink()
    with pytest.raises(D.DatasetError) as e:
        D.load_folder(mvtec, "bottle", "test")
    msg = str(e.value)
    assert "scratch/001.png" in msg and "ground_truth/scratch" in msg and "001_mask" in msg
    shutil.rmtree(mvtec / "bottle/ground_truth/scratch")
    with pytest.raises(D.DatasetError, match="folder missing"):
        D.load_folder(mvtec, "bottle", "test")


def test_mask_size_mismatch(mvtec):
    _write_mask(mvtec / "bottle/ground_truth/crack/001_mask.png", size=10)
    with pytest.raises(D.DatasetError) as e:
        D.load_folder(mvtec, "bottle", "test")
    assert "001_mask.png" in str(e.value) and "10x10" in str(e.value) and "20x20" in str(e.value)


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_unreadable_image(mvtec, kind):
    bad = mvtec / "bottle/train/good/002.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"this is not a png")
    with pytest.raises(D.DatasetError, match="002.png"):
        D.load_folder(mvtec, "bottle", "train", cache=False)
    assert "unreadable image" in D.summarize(mvtec) or kind == "truncated"


def test_visa_csv_problems(tmp_path):
    src = _make_raw_visa(tmp_path / "raw", cats=("candle",))
    with pytest.raises(D.DatasetError, match="1cls.csv"):
        D.prepare_visa(src, tmp_path / "out", split_csv=src / "split_csv" / "2cls.csv", progress=False)
    (src / "candle/Data/Images/Anomaly/001.JPG").unlink()
    with pytest.raises(D.DatasetError, match="Anomaly/001.JPG"):
        D.prepare_visa(src, tmp_path / "out", progress=False)
    (src / "split_csv/1cls.csv").write_text("name,split\ncandle/x.JPG,train\n")
    with pytest.raises(D.DatasetError, match="object,split,label,image,mask"):
        D.prepare_visa(src, tmp_path / "out", progress=False)


# ----------------------------------------------------------------------------- hazelnut_toy

needs_hazelnut = pytest.mark.skipif(not HAZELNUT.is_dir(), reason=f"hazelnut_toy not found at {HAZELNUT}")


@needs_hazelnut
def test_hazelnut_toy_loads():
    train = D.load("folder", None, "train", root=HAZELNUT, size=64)
    _check_set(train, 28, 3, 64)
    test = D.load("folder", "hazelnut_toy", "test", root=HAZELNUT, size=64)
    _check_set(test, 23, 3, 64)
    assert test.defect_types.count("good") == 6 and test.defect_types.count("colour") == 17
    assert (test.masks.flatten(1).sum(1) > 0).sum() == 17
    assert not list((HAZELNUT / "ground_truth/colour").glob("*_mask*"))   # matched without _mask
    for img, m in zip(test.images[6:], test.masks[6:]):               # marks sit on the nut, not
        assert img[1, m].mean() < img[1, ~m].mean() - 0.3             # on the bright yellow ground


@needs_hazelnut
def test_summarize_hazelnut():
    text = D.summarize(HAZELNUT)
    assert "hazelnut_toy" in text and "good 28" in text and "good 6" in text
    assert "colour 17" in text and "masks 17/17" in text and "problems: none" in text


def test_summarize_miniature_trees(mvtec, tmp_path):
    text = D.summarize(mvtec, dataset="mvtec")
    for want in ("bottle", "grid", "screw", "3 categories", "good 4", "crack 2", "masks 4/4", "20x20",
                 "I;16", "missing mvtec categories"):
        assert want in text, want
    (mvtec / "bottle/ground_truth/crack/000_mask.png").unlink()
    _write_mask(mvtec / "grid/ground_truth/bent/001_mask.png", size=10)
    text = D.summarize(mvtec)
    assert "no mask for" in text and "crack/000.png" in text and "10x10" in text
    btad = tmp_path / "btad"
    make_mvtec(btad, "02", normal="ok", defects=("ko",), mask_suffix="")
    assert "BTAD" in D.summarize(btad) and "ok 4" in D.summarize(btad / "02")
    with pytest.raises(D.DatasetError, match="missing_root"):
        D.summarize(tmp_path / "missing_root")


# ----------------------------------------------------------------------------- embedded data

@pytest.mark.parametrize("cat", ["brick", "grass", "gravel"])
def test_textures(cat):
    test = D.load("textures", cat, "test", seed=3)
    _check_set(test, 60, 1, 64)
    assert test.labels.sum() == 30 and set(test.defect_types) == {"good", *D.DEFECT_KINDS}
    again = D.load_textures(cat, "test", seed=3)
    assert torch.equal(test.images, again.images) and torch.equal(test.masks, again.masks)
    other = D.load_textures(cat, "test", seed=4)
    assert not torch.equal(test.images, other.images)
    train = D.load_textures(cat, "train", n_train=50, size=32, seed=3)
    _check_set(train, 50, 1, 32)
    assert not train.labels.any()


@pytest.mark.parametrize("kind", D.DEFECT_KINDS)
def test_synth_defect_masks_exactly_the_changed_pixels(kind):
    rng = np.random.default_rng(0)
    for seed in range(20):
        clean = D._crop(D._texture("brick"), 7 * seed, 3 * seed, 128, 64)
        swap = D._crop(D._texture("gravel"), 0, 5 * seed, 128, 64)
        out, mask = D.synth_defect(clean, kind, generator=rng, swap_source=swap)
        assert np.array_equal(mask, out != clean)
        assert np.all(np.abs(out - clean)[mask] >= 0.1 - 1e-6)
        assert out.min() >= 0 and out.max() <= 1
    flat = np.full((64, 64), 0.5, np.float32)                     # a swap with itself changes nothing
    out, mask = D.synth_defect(flat, "swap", generator=rng, swap_source=flat)
    assert not mask.any() and np.array_equal(out, flat)


def test_mnist_one_class_split():
    train = D.load("mnist", 3, "train")
    _check_set(train, 400, 1, 32)
    assert not train.labels.any()
    test = D.load_mnist("3", "test")
    _check_set(test, 200, 1, 32, masks=False)
    assert test.labels.sum() == 100 and "3" not in test.defect_types
    assert torch.equal(test.images, D.load_mnist(3, "test").images)
    assert not torch.equal(test.images, D.load_mnist(3, "test", seed=1).images)
    assert (test.images[:, :, :2] == -1).all()                    # 2-px black padding 28 -> 32
    big = D.load_mnist(3, "train", size=64, n_train=100)
    assert big.images.shape == (100, 1, 64, 64)
    seen = {img.numpy().tobytes() for img in train.images}      # train and test never overlap
    assert not any(img.numpy().tobytes() in seen for img in test.images[test.labels == 0])


# ----------------------------------------------------------------------------- MNIST idx files (Score-DD paper profile)

def _write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    import gzip
    import struct

    magic = 2051 if arr.ndim == 3 else 2049
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in arr.shape) + arr.astype(np.uint8).tobytes()
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_load_mnist_files_one_class_split(tmp_path, gz):
    rng = np.random.default_rng(0)
    y_train, y_test = np.array([3, 1, 3, 7, 3, 0]), np.array([3, 5, 3, 9])
    x_train = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    x_test = rng.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    for stem, arr in (("train-images-idx3-ubyte", x_train), ("train-labels-idx1-ubyte", y_train),
                      ("t10k-images-idx3-ubyte", x_test), ("t10k-labels-idx1-ubyte", y_test)):
        _write_idx(tmp_path / stem, arr, gz)
    train = D.load_mnist_files(tmp_path, 3, "train", size=None)
    assert train.images.shape == (3, 1, 28, 28) and not train.labels.any()
    assert torch.allclose(train.images[0, 0], torch.from_numpy(x_train[0] / 127.5 - 1.0).float(), atol=1e-5)
    test = D.load_mnist_files(tmp_path, "3", "test")                    # resized 28 -> 32
    _check_set(test, 4, 1, 32, masks=False)
    assert test.labels.tolist() == [0, 1, 0, 1] and test.defect_types == ["good", "5", "good", "9"]
    assert test.images.min() >= -1 and test.images.max() <= 1


def test_load_mnist_files_errors(tmp_path):
    with pytest.raises(D.DatasetError, match="does not exist"):
        D.load_mnist_files(tmp_path / "nowhere", 1, "train")
    with pytest.raises(D.DatasetError, match="train-images-idx3-ubyte"):
        D.load_mnist_files(tmp_path, 1, "train")
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28)), False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x03junk")
    with pytest.raises(D.DatasetError, match="not an MNIST idx file"):
        D.load_mnist_files(tmp_path, 1, "train")
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3), False)
    with pytest.raises(D.DatasetError, match="2 train images but 3 labels"):
        D.load_mnist_files(tmp_path, 1, "train")
    with pytest.raises(D.DatasetError, match="digit"):
        D.load_mnist_files(tmp_path, 12, "train")
