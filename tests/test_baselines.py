import numpy as np
import pytest
import torch
from scipy import ndimage

from scoreviz import baselines, data, detectors, metrics
from scoreviz.baselines import PatchNN, PixelNN, ZScore


def _rand(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _np_patches(x, patch, stride=1):
    """All patches (row-major) of the mirror-padded images x (N, C, H, W), as (N * L, C * patch^2)."""
    p = patch // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect")
    h, w = x.shape[2:]
    out = [xp[n, :, i:i + patch, j:j + patch].ravel()
           for n in range(len(x)) for i in range(0, h, stride) for j in range(0, w, stride)]
    return np.array(out, dtype=np.float64)


# ----------------------------------------------------------------------------- against hand computations

def test_zscore_matches_numpy():
    train, test = _rand((6, 2, 7, 9), 0), _rand((3, 2, 7, 9), 1)
    train[:, 1, 2, 3] = 0.4                                     # a pixel that never varies: std floored
    x, t = train.numpy().astype(np.float64), test.numpy().astype(np.float64)
    std = np.maximum(x.std(0), 0.05)                            # population std (ddof 0), floored at min_std
    z = (np.abs(t - x.mean(0)) / std).max(1)
    det = ZScore(min_std=0.05, smooth=1).fit(train)
    m = det.maps(test)
    assert m.shape == (3, 7, 9) and m.dtype == torch.float32
    assert np.allclose(m.numpy(), z, rtol=1e-5, atol=1e-5)
    smoothed = np.stack([ndimage.uniform_filter(a, 3, mode="mirror") for a in z])
    assert np.allclose(det.replace(smooth=3).maps(test).numpy(), smoothed, rtol=1e-5, atol=1e-5)
    assert np.allclose(det.scores(m).numpy(), z.reshape(3, -1).max(1), rtol=1e-5)
    z2 = (np.abs(t - x.mean(0)) / np.maximum(x.std(0), 0.3)).max(1)   # replace(min_std=) reuses the fit
    assert np.allclose(det.replace(min_std=0.3).maps(test).numpy(), z2, rtol=1e-5, atol=1e-5)


def test_patch_nn_matches_brute_force():
    train, test = _rand((3, 2, 6, 5), 2), _rand((2, 2, 6, 5), 3)
    for patch, stride in [(3, 1), (3, 2), (5, 1), (1, 1)]:
        bank = _np_patches(train.numpy(), patch, stride)
        queries = _np_patches(test.numpy(), patch)
        ref = np.sqrt(((queries[:, None] - bank[None]) ** 2).sum(-1).min(1)).reshape(2, 6, 5)
        det = PatchNN(patch=patch, stride=stride, max_bank=len(bank)).fit(train)
        assert det.bank.shape == (len(bank), 2 * patch * patch)
        assert np.allclose(det.maps(test).numpy(), ref, atol=1e-5), (patch, stride)


def test_pixel_nn_matches_brute_force_and_ranks_by_nn_distance():
    train, test = _rand((25, 1, 8, 8), 4), _rand((12, 1, 8, 8), 5)
    x, t = train.flatten(1).double().numpy(), test.flatten(1).double().numpy()
    d2 = ((t[:, None] - x[None]) ** 2).sum(-1)
    nn = d2.argmin(1)
    det = PixelNN().fit(train)
    m = det.maps(test)
    assert np.allclose(m.numpy(), ((t - x[nn]) ** 2).reshape(12, 8, 8), atol=1e-6)
    scores = det.scores(m).numpy()
    assert np.allclose(scores * 64, d2.min(1), rtol=1e-5)
    assert np.array_equal(np.argsort(scores), np.argsort(d2.min(1)))
    # several channels: the map sums the squared differences over channels, so its sum is the distance
    train3, test3 = _rand((10, 3, 5, 6), 6), _rand((4, 3, 5, 6), 7)
    d3 = ((test3.flatten(1)[:, None] - train3.flatten(1)[None]) ** 2).sum(-1).min(1).values
    assert torch.allclose(PixelNN().fit(train3).maps(test3).sum((1, 2)), d3, rtol=1e-5)


# ----------------------------------------------------------------------------- closed-form cases

@pytest.mark.parametrize("channels", [1, 3])
def test_one_changed_pixel_is_the_maximum(channels):
    train = torch.full((8, channels, 11, 12), 0.2)
    test = torch.full((1, channels, 11, 12), 0.2)
    test[0, channels - 1, 4, 7] = -0.5
    for det in [ZScore(smooth=1), ZScore(), PatchNN(), PixelNN()]:
        m = det.fit(train).maps(test)[0]
        assert m[4, 7] > 0 and m[4, 7] == m.max(), det
        if isinstance(det, PixelNN) or (isinstance(det, ZScore) and det.smooth == 1):
            assert (m > 0).sum() == 1 and m.argmax() == 4 * 12 + 7, det   # no smoothing: a single spike
    assert torch.isclose(PatchNN().fit(train).maps(test)[0, 4, 7], torch.tensor(0.7))
    assert torch.isclose(ZScore(smooth=1).fit(train).maps(test)[0, 4, 7], torch.tensor(0.7 / 1e-2))


def test_identical_image_scores_zero():
    train = _rand((4, 3, 10, 9), 8)
    test = torch.cat([train[2:3], _rand((1, 3, 10, 9), 9)])
    m = PatchNN().fit(train).maps(test)                         # all 4 * 90 patches fit in the bank
    assert torch.equal(m[0], torch.zeros(10, 9)) and m[1].min() > 0
    pix = PixelNN()
    s = pix.scores(pix.fit(train).maps(test))
    assert s[0] == 0 and s[1] > 0


def test_bank_subsampling_is_seeded_and_capped():
    train, test = _rand((5, 1, 12, 12), 10), _rand((2, 1, 12, 12), 11)
    a = PatchNN(patch=3, max_bank=40).fit(train, seed=0)
    b = PatchNN(patch=3, max_bank=40).fit(train, seed=0)
    c = PatchNN(patch=3, max_bank=40).fit(train, seed=1)
    assert a.bank.shape == (40, 9)
    assert torch.equal(a.bank, b.bank) and torch.equal(a.maps(test), b.maps(test))
    assert not torch.equal(a.bank, c.bank)
    assert PatchNN(patch=3, stride=2, max_bank=10_000).fit(train).bank.shape == (5 * 6 * 6, 9)
    idx = baselines._sample_indices(10**9, 100, torch.Generator().manual_seed(0))   # no 10^9-sized permutation
    assert len(idx.unique()) == 100 and idx.max() < 10**9


# ----------------------------------------------------------------------------- protocol

@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(7, 7), (8, 8), (9, 12), (3, 4)])
def test_maps_have_the_input_size(size, channels):
    train, test = _rand((3, channels, *size), 12), _rand((2, channels, *size), 13)
    for det in [ZScore(), PatchNN(), PatchNN(patch=5, stride=2), PixelNN()]:
        m = det.fit(train).maps(test)
        assert m.shape == (2, *size) and m.dtype == torch.float32 and m.device.type == "cpu", det
        assert torch.isfinite(m).all() and det.scores(m).shape == (2,)


@pytest.mark.parametrize("cls, setting, value", [
    (PatchNN, "patch", 4), (PatchNN, "patch", 0), (PatchNN, "patch", -3), (PatchNN, "patch", 3.0),
    (PatchNN, "stride", 0), (PatchNN, "max_bank", 0), (ZScore, "smooth", 2), (ZScore, "smooth", 0),
    (ZScore, "min_std", 0.0), (ZScore, "min_std", float("nan")),
])
def test_bad_settings_raise(cls, setting, value):
    with pytest.raises(ValueError, match=rf"{setting} must be .*got {value!r}"):
        cls(**{setting: value})
    with pytest.raises(ValueError, match=setting):
        cls().replace(**{setting: value})


def test_maps_before_fit_and_bad_inputs_raise():
    x = _rand((2, 1, 8, 8), 14)
    for cls in (ZScore, PatchNN, PixelNN):
        with pytest.raises(RuntimeError, match="not fitted"):
            cls().maps(x)
        with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
            cls().fit(x[0])
    with pytest.raises(ValueError, match="channel"):
        PatchNN().fit(x).maps(_rand((1, 3, 8, 8), 15))
    for cls in (ZScore, PixelNN):
        with pytest.raises(ValueError, match="like the training images"):
            cls().fit(x).maps(_rand((1, 1, 8, 9), 15))


def test_registered_by_name():
    for name, cls in [("zscore", ZScore), ("patch_nn", PatchNN), ("pixel_nn", PixelNN)]:
        assert detectors.REGISTRY[name] is cls
    assert PixelNN.reduce == "mean" and ZScore.reduce == PatchNN.reduce == "max"
    det = detectors.REGISTRY["patch_nn"](patch=5)
    assert det.settings == {"detector": "patch_nn", "patch": 5, "stride": 1, "max_bank": 50_000}
    assert ZScore().settings == {"detector": "zscore", "min_std": 1e-2, "smooth": 3}


def test_build_by_name():
    assert {"zscore", "patch_nn", "pixel_nn"} <= set(detectors.names())
    assert isinstance(detectors.build("zscore", smooth=5), ZScore)
    assert detectors.build("patch_nn", patch=3).patch == 3
    assert isinstance(detectors.build("pixel_nn"), PixelNN)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    train, test = _rand((6, 3, 16, 16), 16), _rand((3, 3, 16, 16), 17)
    for det in [ZScore(), PatchNN(max_bank=500), PixelNN()]:
        cpu = det.fit(train, seed=0).maps(test)
        cuda = det.fit(train, device="cuda", seed=0).maps(test)
        assert cuda.device.type == "cpu" and torch.allclose(cpu, cuda, atol=1e-4), det


# ----------------------------------------------------------------------------- embedded textures (seeded)

def test_baselines_detect_brick_defects():
    train = data.load("textures", "brick", "train", size=32, seed=0)
    test = data.load("textures", "brick", "test", size=32, seed=0)
    # measured (seed 0), image / pixel AUROC: zscore 0.896 / 0.944, patch_nn(max_bank=2000) 0.961 / 0.989,
    # pixel_nn 0.934 / 0.914
    cases = [(ZScore(), 0.85, 0.9), (PatchNN(max_bank=2000), 0.9, 0.95), (PixelNN(), 0.85, 0.8)]
    for det, image_min, pixel_min in cases:
        m = det.fit(train.images, seed=0).maps(test.images)
        assert metrics.image_auroc(det.scores(m), test.labels) > image_min, det
        assert metrics.pixel_auroc(m, test.masks) > pixel_min, det
