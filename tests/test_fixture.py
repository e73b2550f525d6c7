"""Tests for scoreviz.fixture: the generated DATA_ROOT loads with the package's own loaders, every category of
every dataset, with the right counts, channels and masks on the defect blobs; the weight files load."""
import numpy as np
import pytest
import torch
from helpers import check_set

from scoreviz import data as D
from scoreviz.features import WEIGHT_FILES, load_wide_resnet, resolve_weights
from scoreviz.fixture import DEFECTS, GRAY, make_fixture_root
from scoreviz.imageset import CATEGORIES
from scoreviz.nets import load_official_spr
from scoreviz.summary import summarize_report
from scoreviz.weightfile import spr_checkpoint

SIZE, N_TRAIN, N_GOOD, N_DEFECT = 32, 3, 2, 2


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_fixture_root(tmp_path_factory.mktemp("fixture") / "data", size=SIZE, n_train=N_TRAIN,
                             n_good=N_GOOD, n_defect=N_DEFECT, weights=False)


def test_layout_top_level(root):
    assert sorted(p.name for p in root.iterdir()) == ["btad", "mnist", "mpdd", "mvtec", "visa"]
    assert not (root / "_raw_visa").exists() and not list(root.rglob(".*.part"))
    assert len(list((root / "btad/01/test/ko").glob("*.bmp"))) == N_DEFECT
    assert len(list((root / "btad/02/test/ko").glob("*.png"))) == N_DEFECT
    assert (root / "btad/01/ground_truth/ko/000.png").is_file()
    assert (root / "mvtec/bottle/ground_truth/scratch/000_mask.png").is_file()


@pytest.mark.parametrize("dataset", ["mvtec", "mpdd", "btad", "visa"])
def test_every_category_loads_with_counts_and_masks(root, dataset):
    for cat in CATEGORIES[dataset]:
        ch = 1 if dataset == "mvtec" and cat in GRAY else 3
        train = D.load(dataset, cat, "train", root=root / dataset, size=SIZE)
        check_set(train, N_TRAIN, ch, SIZE)
        test = D.load(dataset, cat, "test", root=root / dataset, size=SIZE)
        check_set(test, N_GOOD + N_DEFECT, ch, SIZE)
        assert test.defect_types == ["good"] * N_GOOD + [DEFECTS[dataset]] * N_DEFECT
        for img, m, lab in zip(test.images, test.masks, test.labels):
            if lab:                                           # the blob is white or black, the ground is not
                assert m.sum() >= 9 and img[:, m].abs().mean() > 0.8
        assert torch.equal(D.load(dataset, cat, "test", root=root / dataset, size=SIZE, channels=3).masks,
                           test.masks)
        _, problems = summarize_report(root / dataset, dataset)
        assert problems == []


def test_deterministic_and_seeded(root, tmp_path):
    again = make_fixture_root(tmp_path / "a", size=SIZE, n_train=N_TRAIN, n_good=N_GOOD, n_defect=N_DEFECT,
                              weights=False)
    other = make_fixture_root(tmp_path / "b", size=SIZE, n_train=N_TRAIN, n_good=N_GOOD, n_defect=N_DEFECT,
                              seed=1, weights=False)
    for rel in ("mvtec/bottle/test/scratch/000.png", "btad/03/train/ok/001.bmp", "mnist/train-images-idx3-ubyte"):
        assert (again / rel).read_bytes() == (root / rel).read_bytes()
    assert (other / "mvtec/bottle/test/scratch/000.png").read_bytes() != (root / "mvtec/bottle/test/scratch/000.png").read_bytes()


def test_mnist_idx_files(root):
    for digit in CATEGORIES["mnist"]:
        train = D.load_mnist_files(root / "mnist", digit, "train", size=28)
        assert len(train) == N_TRAIN and train.labels.sum() == 0 and train.images.shape[1:] == (1, 28, 28)
        test = D.load("mnist", digit, "test", root=root / "mnist")
        assert len(test) == 10 * N_GOOD and int(test.labels.sum()) == 9 * N_GOOD
        assert test.images.shape[1:] == (1, 32, 32) and train.images.std() > 0.3
    train_all = np.concatenate([D.load_mnist_files(root / "mnist", d, "train").images.numpy() for d in range(10)])
    test_all = D.load_mnist_files(root / "mnist", 0, "test").images.numpy()
    assert not any(np.array_equal(a, b) for a in test_all for b in train_all)     # disjoint splits


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_defect=0"):
        make_fixture_root(tmp_path, n_defect=0, weights=False)


def test_weights_load(tmp_path, monkeypatch):
    monkeypatch.delenv("SCOREVIZ_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))                  # no hub cache: data_root/weights
    root = make_fixture_root(tmp_path / "data", size=16, n_train=1, n_good=1, n_defect=1)
    w = root / "weights"
    assert sorted(p.name for p in w.iterdir()) == sorted([f"{c}.pth" for c in CATEGORIES["mvtec"]] + [WEIGHT_FILES[101]])
    assert (w / "zipper.pth").stat().st_size == (w / "bottle.pth").stat().st_size
    net = load_official_spr(spr_checkpoint(w, "zipper"), in_channels=3)
    with torch.no_grad():
        assert torch.isfinite(net(torch.rand(1, 3, 32, 32) * 2 - 1, torch.tensor([0.5]))).all()
    assert resolve_weights(None, 101, data_root=root) == w / WEIGHT_FILES[101]
    wrn = load_wide_resnet(w / WEIGHT_FILES[101], 101)
    with torch.no_grad():
        feats = wrn(torch.rand(1, 3, 64, 64))
    assert all(torch.isfinite(f).all() for f in feats.values())


def test_fixture_with_a_subset_of_categories(tmp_path):
    root = make_fixture_root(tmp_path, size=16, n_train=2, n_good=1, n_defect=1, weights=False,
                             categories={"mvtec": ("bottle", "grid"), "mpdd": (), "visa": ("pcb1",)})
    assert sorted(p.name for p in (root / "mvtec").iterdir()) == ["bottle", "grid"]
    assert not (root / "mpdd").exists() and len(list((root / "btad").iterdir())) == 3
    assert [p.name for p in (root / "visa").iterdir()] == ["pcb1"]
    with pytest.raises(ValueError, match="unknown categories"):
        make_fixture_root(tmp_path / "x", size=16, weights=False, categories={"mvtec": ("botle",)})
