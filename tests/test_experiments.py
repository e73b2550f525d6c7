"""The experiments layer: category loading, hold-out split, run -> Result, examples."""
import numpy as np
import pytest
import torch

from scoreviz import detectors, experiments, maps, metrics
from scoreviz.data import ImageSet


def _set(n, size=8, anomalous=0, kinds=None):
    g = torch.Generator().manual_seed(n)
    images = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    labels = torch.zeros(n, dtype=torch.long)
    labels[n - anomalous:] = 1
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[n - anomalous:, 2:4, 2:4] = True
    kinds = kinds or ["good"] * (n - anomalous) + ["defect"] * anomalous
    return ImageSet(images, masks, labels, kinds, [f"{i}.png" for i in range(n)])


def test_holdout_split_count_fraction_and_seed():
    train = _set(20)
    kept, held = experiments.holdout_split(train, 5, seed=3)
    assert len(kept) == 15 and len(held) == 5
    both = torch.cat([kept.images, held.images])
    assert torch.equal(both.flatten(1).sum(1).sort().values, train.images.flatten(1).sum(1).sort().values)
    again = experiments.holdout_split(train, 5, seed=3)[1]
    other = experiments.holdout_split(train, 5, seed=4)[1]
    assert torch.equal(again.images, held.images) and not torch.equal(other.images, held.images)
    assert len(experiments.holdout_split(train, 0.25, seed=0)[1]) == 5
    assert experiments.holdout_split(train, 0)[1] is None
    with pytest.raises(ValueError, match="at least 2 must stay"):
        experiments.holdout_split(_set(3), 2)
    with pytest.raises(ValueError, match="fraction"):
        experiments.holdout_split(train, 1.5)


def test_holdout_count_a_small_category_cannot_give_is_capped_with_a_warning():
    """#16.10: notebook 08's 32 held-out normals on a folder of 25 training images stopped the notebook."""
    with pytest.warns(UserWarning, match="holds out 6 of 25"):
        kept, held = experiments.holdout_split(_set(25), 32, seed=0)
    assert (len(kept), len(held)) == (19, 6)


def test_load_category_textures_eval_size_and_holdout():
    cat = experiments.load_category("textures", "brick", size=16, eval_size=24, holdout=0.1, seed=0)
    assert cat.train.images.shape[-1] == 16 and cat.test.images.shape[-1] == 16
    assert cat.masks.shape[1:] == (24, 24) and len(cat.masks) == len(cat.test)
    assert len(cat.holdout) == max(2, round(0.1 * (len(cat.train) + len(cat.holdout))))
    with pytest.raises(Exception, match="DATA_ROOT"):
        experiments.load_category("mvtec", "bottle", size=16)


def test_run_returns_one_result_with_independent_metrics():
    train, test = _set(10), _set(12, anomalous=4)
    test.images[8:, :, 2:4, 2:4] = 5.0                       # the anomalies are far from every training pixel
    cat = experiments.CategoryData("toy", train, None, test, test.masks)
    det = detectors.build("zscore", smooth=1)
    result = experiments.run(det, cat, dataset="toy", seed=0, device="cpu", pro=False)
    assert result.maps.shape == (12, 8, 8) and result.label == "zscore" and result.category == "toy"
    assert torch.equal(result.scores, result.maps.flatten(1).amax(1))
    assert result.metrics["image_auroc"] == metrics.image_auroc(result.scores, test.labels) == 1.0
    assert result.metrics["pixel_auroc"] == metrics.pixel_auroc(result.maps, test.masks)
    assert result.settings["detector"] == "zscore" and result.seconds["fit"] >= 0
    row = experiments.results_table([result]).iloc[0]
    assert row["method"] == "zscore" and row["image_auroc"] == 1.0
    # maps are evaluated at the ground truth's size (Lanczos); a crop evaluates the centre only
    big = torch.nn.functional.interpolate(test.masks[:, None].float(), size=16)[:, 0] > 0.5
    again = experiments.run(det, experiments.CategoryData("toy", train, None, test, big), dataset="toy", pro=False)
    assert torch.equal(again.masks, big) and again.seconds["fit"] == 0.0
    assert torch.allclose(again.maps, maps.resize_maps(result.maps, 16, "lanczos"))
    cropped = experiments.run(det, cat, dataset="toy", pro=False, crop=4)
    assert cropped.maps.shape == (12, 4, 4) and torch.equal(cropped.maps, result.maps[:, 2:6, 2:6])


def test_pick_examples_one_per_defect_type_first():
    test = _set(8, anomalous=5, kinds=["good"] * 3 + ["a", "a", "b", "a", "c"])
    assert experiments.pick_examples(test, 3) == [3, 5, 7]
    assert experiments.pick_examples(test, 4) == [3, 5, 7, 4]
    assert experiments.pick_examples(test, 2, per_defect=False) == [3, 4]
    assert experiments.pick_examples(test, 10) == [3, 5, 7, 4, 6]


def test_category_names():
    assert experiments.category_names("folder") == [None]
    assert experiments.category_names("textures", "brick") == ["brick"]
    assert experiments.category_names("mvtec", "carpet") == ["carpet"]     # #16.9: not ['c', 'a', 'r', ...]
    assert experiments.category_names("textures", configured=("grass",)) == ["grass"]
    assert experiments.category_names("textures") == ["brick", "grass", "gravel"]


def test_center_crop():
    a = torch.arange(16.0).view(1, 4, 4)
    assert experiments.center_crop(a, 2).tolist() == [[[5.0, 6.0], [9.0, 10.0]]]
    assert experiments.center_crop(torch.zeros(2, 256, 256), 224).shape == (2, 224, 224)
    assert experiments.center_crop(a, None) is a
    with pytest.raises(ValueError, match="larger"):
        experiments.center_crop(a, 5)


def test_category_names_on_disk_are_the_categories_found(tmp_path):
    """A partial download (or a fixture) runs what is there, with a warning naming what is missing."""
    for name in ("bottle", "grid"):
        (tmp_path / "mvtec" / name).mkdir(parents=True)
    with pytest.warns(UserWarning, match="13 of 15 categories are not under .*cable"):
        assert experiments.category_names("mvtec", None, (), tmp_path) == ["bottle", "grid"]
    assert experiments.category_names("mvtec", None, ("grid",), tmp_path) == ["grid"]
    assert len(experiments.category_names("mvtec")) == 15
    with pytest.raises(experiments.data_.DatasetError, match="no btad category folder"):
        experiments.category_names("btad", None, (), tmp_path)


def _result(label, category, shift, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0] * 20 + [1] * 20)
    masks = torch.zeros(40, 6, 6, dtype=torch.bool)
    masks[20:, 2:4, 2:4] = True
    amaps = torch.randn(40, 6, 6, generator=g) + shift * masks
    scores = amaps.flatten(1).amax(1)
    return experiments.Result(label, "toy", category, amaps, scores, labels, masks,
                              metrics.evaluate(amaps, masks, labels, pro=False), {}, {}, 0)


def test_bootstrap_intervals_and_paired_margin():
    base = [_result("base", c, 1.0, i) for i, c in enumerate("ab")]
    better = [experiments.Result(**{**vars(r), "label": "better", "maps": r.maps + 2.0 * r.masks,
                                    "scores": (r.maps + 2.0 * r.masks).flatten(1).amax(1)}) for r in base]
    for r in better:
        r.metrics = metrics.evaluate(r.maps, r.masks, r.labels, pro=False)
    boot = experiments.bootstrap(base + better, n_boot=300)
    table = boot.table().set_index(["method", "metric", "category"])
    assert len(table) == 2 * 2 * 3                           # methods x metrics x (a, b, mean)
    for (method, metric, category), row in table.iterrows():
        assert row.lo <= row.value <= row.hi, (method, metric, category)
        if category != "mean":
            assert row.value == pytest.approx(next(r for r in base + better if (r.label, r.category) == (
                method, category)).metrics[metric])
    assert table.loc[("base", "image_auroc", "mean"), "value"] == pytest.approx(
        sum(r.metrics["image_auroc"] for r in base) / 2)
    means = boot.means("toy", {"better": "B", "base": "A"})
    assert list(means.index) == ["B", "A"] and list(means.columns) == ["image_auroc", "pixel_auroc"]
    row = table.loc[("base", "pixel_auroc", "mean")]
    assert means.loc["A", "pixel_auroc"] == f"{row.value:.3f} [{row.lo:.3f}, {row.hi:.3f}]"
    ahead = boot.margin("better", ["base"], "toy")
    assert (ahead.best == "base").all() and (ahead.lo > 0).all() and (ahead.difference > 0).all()
    row = ahead.loc["image_auroc"]
    assert experiments.margin_text(ahead).startswith(f"image {row.difference:+.3f} [{row.lo:+.3f}, {row.hi:+.3f}] vs base; pixel +")
    tie = boot.margin("base", ["base"], "toy")
    assert (tie.difference == 0).all() and (tie.lo == 0).all() and (tie.hi == 0).all()
    a, b = (boot.samples["base", "toy", c]["image_auroc"] for c in "ab")
    assert not np.allclose(a - a.mean(), b - b.mean())      # categories are drawn independently
    with pytest.raises(ValueError, match="two results"):
        experiments.bootstrap(base + base, n_boot=5)
    with pytest.raises(ValueError, match="no image_auroc samples of 'nope'"):
        boot.margin("nope", ["base"], "toy")
