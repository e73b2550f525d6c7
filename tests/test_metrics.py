"""Tests for scoreviz.metrics: sklearn cross-checks, brute-force references, hand values."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from scoreviz.metrics import (aupro, average_precision, bootstrap, f1_max, image_auroc, interval, pixel_auroc,
                              pixel_average_precision, pixel_f1_max)

EIGHT = np.ones((3, 3), dtype=int)
FOUR = ndimage.generate_binary_structure(2, 1)


# ---------------------------------------------------------------- independent references
def regions_of(masks, structure=EIGHT):
    """List of boolean (N, H, W) arrays, one per connected ground-truth region."""
    out = []
    for i, mask in enumerate(masks):
        lab, n = ndimage.label(mask, structure=structure)
        for k in range(1, n + 1):
            region = np.zeros(masks.shape, dtype=bool)
            region[i] = lab == k
            out.append(region)
    return out


def pro_curve_bruteforce(maps, masks, structure=EIGHT):
    """(fpr, pro) at every distinct threshold, descending, prefixed with (0, 0)."""
    regions = regions_of(masks, structure)
    normal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        fprs.append(np.count_nonzero(pred & normal) / np.count_nonzero(normal))
        pros.append(np.mean([np.count_nonzero(pred & r) / np.count_nonzero(r) for r in regions]))
    return np.array(fprs), np.array(pros)


def area_up_to(x, y, limit):
    """Trapezoid area under the polyline (x, y) for x in [0, limit], segment by segment."""
    area = 0.0
    for x0, x1, y0, y1 in zip(x[:-1], x[1:], y[:-1], y[1:]):
        if x0 >= limit:
            break
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:  # the segment crosses the limit: cut it there
            y_cut = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_cut) / 2
    return area


def aupro_bruteforce(maps, masks, fpr_limit=0.3, structure=EIGHT):
    fpr, pro = pro_curve_bruteforce(maps, masks, structure)
    return area_up_to(fpr, pro, fpr_limit) / fpr_limit


def f1_max_bruteforce(scores, labels):
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        tp = np.sum(pred & (labels == 1))
        fp = np.sum(pred & (labels == 0))
        fn = np.sum(~pred & (labels == 1))
        p = tp / (tp + fp)
        r = tp / (tp + fn)
        best = max(best, 0.0 if p + r == 0 else 2 * p * r / (p + r))
    return best


# ---------------------------------------------------------------- test data
def blob_masks(rng, n, h, w, p_empty=0.25):
    """Random disks and rectangles; some images all normal."""
    yy, xx = np.mgrid[:h, :w]
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        if rng.random() < p_empty:
            continue
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(1, 4)
            if rng.random() < 0.5:
                masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            else:
                masks[i, cy:cy + r + 1, cx:cx + 2 * r] = True
    masks[0, 2:5, 3:6] = True  # at least one region
    return masks


def random_case(seed, n=4, h=12, w=14, decimals=None):
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, n, h, w)
    maps = (rng.normal(size=(n, h, w)) + 1.5 * masks).astype(np.float32)
    if decimals is not None:
        maps = np.round(maps, decimals)
    return maps, masks


# ---------------------------------------------------------------- AUROC / AP / F1 vs sklearn
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_image_metrics_match_sklearn(seed, decimals):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=200)
    scores = rng.normal(size=200) + labels
    if decimals is not None:  # many ties
        scores = np.round(scores, decimals)
    assert image_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert average_precision(scores, labels) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-6)
    assert f1_max(scores, labels) == pytest.approx(f1_max_bruteforce(scores, labels), abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("decimals", [None, 1])
def test_pixel_metrics_match_sklearn(seed, decimals):
    maps, masks = random_case(seed, n=6, h=20, w=20, decimals=decimals)
    y, s = masks.ravel(), maps.ravel()
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    assert pixel_average_precision(maps, masks) == pytest.approx(
        average_precision_score(y, s), abs=1e-6)
    assert pixel_f1_max(maps, masks) == pytest.approx(f1_max_bruteforce(s, y), abs=1e-6)


def test_torch_and_numpy_agree():
    maps, masks = random_case(7)
    tmaps, tmasks = torch.from_numpy(maps), torch.from_numpy(masks)
    assert pixel_auroc(tmaps, tmasks) == pixel_auroc(maps, masks)
    assert aupro(tmaps, tmasks) == aupro(maps, masks)
    scores, labels = tmaps.amax(dim=(1, 2)), torch.tensor([1, 0, 1, 0])
    assert image_auroc(scores, labels) == image_auroc(scores.numpy(), labels.numpy())
    assert isinstance(image_auroc(scores, labels), float)
    for dtype in (torch.float16, torch.bfloat16):  # half precision is upcast, not rejected
        half = tmaps.to(dtype)
        assert aupro(half, tmasks) == aupro(half.float().numpy(), masks)


def test_pixel_auroc_by_hand():
    # positives {0.35, 0.8}, negatives {0.1, 0.4}: pairs won 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3/4
    maps = np.array([[[0.1, 0.4, 0.35, 0.8]]])
    masks = np.array([[[False, False, True, True]]])
    assert pixel_auroc(maps, masks) == pytest.approx(0.75)
    # with a tie: positives {0.5, 0.9}, negatives {0.2, 0.5}: 0.5 beats 0.2 (1) and ties 0.5
    # (1/2); 0.9 beats both (2) -> 3.5 / 4 = 0.875
    maps = np.array([[[0.2, 0.5, 0.5, 0.9]]])
    masks = np.array([[[False, True, False, True]]])
    assert pixel_auroc(maps, masks) == pytest.approx(0.875)


# ---------------------------------------------------------------- AUPRO
HAND_MAPS = np.array([[[0.9, 0.6, 0.6],
                       [0.8, 0.3, 0.1]]])
HAND_MASKS = np.array([[[True, True, False],
                        [False, False, True]]])
# 8-connectivity: (0,0),(0,1),(1,2) is ONE region of size 3 ((0,1)-(1,2) touch diagonally).
# Normal pixels 0.6, 0.8, 0.3 (3 of them). Thresholds descending -> (FPR, PRO):
#   0.9 -> (0, 1/3)   0.8 -> (1/3, 1/3)   0.6 -> (2/3, 2/3)   0.3 -> (1, 2/3)   0.1 -> (1, 1)
# curve (0,0),(0,1/3),(1/3,1/3),(2/3,2/3),(1,2/3),(1,1).
#   limit 0.3: area 0.3 * 1/3 = 0.1                                   -> / 0.3 = 1/3
#   limit 0.5: 1/3*1/3 + (0.5-1/3)*(1/3 + 1/2)/2 = 1/9 + 5/72 = 13/72 -> / 0.5 = 13/36
#   limit 1.0: 1/9 + 1/3*(1/3+2/3)/2 + 1/3*2/3 = 1/9 + 1/6 + 2/9 = 1/2
# 4-connectivity would give two regions (sizes 2 and 1) and PRO 1/4, 1/4, 1/2, 1/2, 1:
#   limit 0.5: 1/3*1/4 + (1/6)*(1/4 + 3/8)/2 = 13/96 -> / 0.5 = 13/48.
@pytest.mark.parametrize("limit, expected", [(0.3, 1 / 3), (0.5, 13 / 36), (1.0, 0.5)])
def test_aupro_by_hand(limit, expected):
    assert aupro(HAND_MAPS, HAND_MASKS, fpr_limit=limit) == pytest.approx(expected, abs=1e-12)
    assert aupro_bruteforce(HAND_MAPS, HAND_MASKS, limit) == pytest.approx(expected, abs=1e-12)


def test_hand_case_distinguishes_4_from_8_connectivity():
    assert aupro_bruteforce(HAND_MAPS, HAND_MASKS, 0.5, FOUR) == pytest.approx(13 / 48)
    assert aupro(HAND_MAPS, HAND_MASKS, fpr_limit=0.5) != pytest.approx(13 / 48)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("limit", [0.3, 1.0])
def test_aupro_matches_bruteforce_random(seed, decimals, limit):
    maps, masks = random_case(seed, decimals=decimals)
    expected = aupro_bruteforce(maps, masks, limit)
    assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(expected, abs=1e-6)


def special_case():
    """All-normal image, border region, one-pixel region, diagonal-only contact."""
    rng = np.random.default_rng(3)
    masks = np.zeros((4, 10, 10), dtype=bool)
    masks[1, 0:3, 7:10] = True          # touches the top and right borders
    masks[1, 6, 2] = True               # one-pixel region
    masks[2, 4, 4] = masks[2, 5, 5] = masks[2, 6, 6] = True  # diagonal chain: ONE region
    masks[3, 0, 0] = masks[3, 1, 1] = True                    # diagonal, at the corner
    masks[3, 5:9, 3:5] = True
    maps = np.round(rng.normal(size=masks.shape) + masks, 1)  # heavy ties too
    return maps, masks                  # image 0 is all normal


def test_special_case_regions_are_8_connected():
    _, masks = special_case()
    assert len(regions_of(masks)) == 5  # border, one-pixel, diagonal chain, corner pair, block
    assert len(regions_of(masks, FOUR)) == 8


@pytest.mark.parametrize("limit", [0.3, 1.0, 0.05])
def test_aupro_matches_bruteforce_special(limit):
    maps, masks = special_case()
    expected = aupro_bruteforce(maps, masks, limit)
    assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(expected, abs=1e-6)
    assert expected != pytest.approx(aupro_bruteforce(maps, masks, limit, FOUR), abs=1e-6)


def test_aupro_perfect_and_invariances():
    maps, masks = random_case(11)
    perfect = masks.astype(np.float32)
    assert aupro(perfect, masks) == pytest.approx(1.0)
    # only the order of scores matters; the order of images does not
    assert aupro(np.exp(maps), masks) == pytest.approx(aupro(maps, masks), abs=1e-12)
    assert aupro(maps[::-1], masks[::-1]) == pytest.approx(aupro(maps, masks), abs=1e-12)


# ---------------------------------------------------------------- bad inputs
def test_shape_mismatch_raises():
    maps, masks = random_case(0)
    msg = r"masks: expected shape .*match maps, got shape \(4, 12, 13\)"
    with pytest.raises(ValueError, match=msg):
        aupro(maps, masks[..., :13])
    with pytest.raises(ValueError, match="masks"):
        pixel_auroc(maps, masks[:3])
    with pytest.raises(ValueError, match="labels"):
        image_auroc(np.zeros(5), np.array([0, 1, 0, 1]))


def test_wrong_ndim_raises():
    maps, masks = random_case(0)
    with pytest.raises(ValueError, match=r"maps: expected a 3-D array .*got shape \(12, 14\)"):
        pixel_auroc(maps[0], masks[0])
    with pytest.raises(ValueError, match=r"maps: expected a 3-D"):
        aupro(maps[0], masks[0])
    with pytest.raises(ValueError, match=r"scores: expected a 1-D array"):
        image_auroc(maps, masks)


def test_single_class_raises():
    with pytest.raises(ValueError, match="labels: expected both classes"):
        image_auroc(np.array([0.1, 0.5, 0.2]), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="labels: expected both classes"):
        image_auroc(np.array([0.1, 0.5, 0.2]), np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="masks: expected both classes"):
        pixel_auroc(np.random.rand(2, 4, 4), np.zeros((2, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="labels"):
        f1_max(np.array([0.1, 0.5]), np.array([0, 0]))
    with pytest.raises(ValueError, match="masks: expected both classes"):
        pixel_f1_max(np.random.rand(2, 4, 4), np.zeros((2, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="masks: expected both classes"):
        pixel_average_precision(np.random.rand(2, 4, 4), np.zeros((2, 4, 4), dtype=bool))


def test_aupro_without_anomaly_or_normal_raises():
    maps = np.random.default_rng(0).random((2, 5, 5))
    with pytest.raises(ValueError, match="masks: expected at least one anomalous pixel"):
        aupro(maps, np.zeros((2, 5, 5), dtype=bool))
    with pytest.raises(ValueError, match="masks: expected at least one normal"):
        aupro(maps, np.ones((2, 5, 5), dtype=bool))


def test_other_bad_values_raise():
    maps, masks = random_case(0)
    with pytest.raises(ValueError, match="labels: expected bool or 0/1"):
        image_auroc(np.arange(3.0), np.array([0, 1, 2]))
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="maps: expected finite"):
        aupro(bad, masks)
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(maps, masks, fpr_limit=0.0)
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(maps, masks, fpr_limit=1.5)


# ---------------------------------------------------------------- bootstrap over test images
@pytest.mark.parametrize("decimals", [None, 1])
def test_bootstrap_matches_metrics_on_the_resampled_images(decimals):
    """Every resample's exact AUROCs equal sklearn's on the images it draws (materialised with np.repeat)."""
    maps, masks = random_case(3, n=10, h=9, w=11, decimals=decimals)
    labels = masks.reshape(10, -1).any(1)
    scores = maps.reshape(10, -1).max(1) + 0.3 * labels
    out = bootstrap(scores, labels, maps, masks, n_boot=25, seed=4)
    assert out["counts"].shape == (25, 10) and (out["counts"].sum(1) == 10).all()
    for b in range(25):
        idx = np.repeat(np.arange(10), out["counts"][b].astype(int))
        assert labels[idx].sum() == labels.sum()            # stratified: as many anomalous images each time
        assert out["image_auroc"][b] == pytest.approx(roc_auc_score(labels[idx], scores[idx]), abs=1e-12)
        assert out["pixel_auroc"][b] == pytest.approx(
            roc_auc_score(masks[idx].ravel(), maps[idx].ravel()), abs=1e-12)


def test_bootstrap_is_paired_and_interval_covers_the_estimate():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 30)
    a = rng.normal(size=60) + labels
    b = a + 0.5 * labels                     # the same scores, anomalies raised: never a lower AUROC
    one, two = bootstrap(a, labels, n_boot=400, seed=1), bootstrap(b, labels, n_boot=400, seed=1)
    assert (one["counts"] == two["counts"]).all()           # same draws: differences are paired
    assert "pixel_auroc" not in one
    lo, hi = interval(one["image_auroc"])
    assert lo < image_auroc(a, labels) < hi and hi - lo < 0.35
    diff = two["image_auroc"] - one["image_auroc"]
    assert (diff >= 0).all() and interval(diff)[0] > 0     # unpaired resamples would often be negative
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap(a, labels, n_boot=0)
    with pytest.raises(ValueError, match="both classes"):
        bootstrap(a, np.zeros(60))
    with pytest.raises(ValueError, match="level"):
        interval(one["image_auroc"], level=95)
