"""Tests for benchmarks/quality.py: the rows it measures and the mean +- std it reports."""
import pandas as pd
import pytest

from benchmarks import quality
from scoreviz import configs, detectors, experiments


def test_summary_means_over_categories_then_spread_over_seeds():
    rows = pd.DataFrame({"detector": ["d"] * 4, "category": ["a", "b", "a", "b"], "seed": [0, 0, 1, 1],
                         "image_auroc": [0.9, 0.7, 1.0, 0.6], "pixel_auroc": [0.5] * 4, "aupro": [None] * 4,
                         "fit_s": [1.0, 3.0, 1.0, 3.0], "ms_per_image": [2.0] * 4})
    table = quality.summary(rows).set_index("category")
    assert table.loc["a", "image_auroc"] == "0.950 ± 0.071"          # mean 0.95, sample std 0.0707
    assert table.loc["mean", "image_auroc"] == "0.800 ± 0.000"       # both seeds average 0.8
    assert table.loc["mean", "pixel_auroc"] == "0.500 ± 0.000"
    assert (table.loc["a", "train s"], table.loc["mean", "train s"], table.loc["mean", "ms / image"]) == (1.0, 2.0, 2.0)


def test_measure_runs_every_detector_on_the_same_images():
    rows = quality.measure(["zscore", "patch_nn"], "embedded", ["digit3"], [0], size=16)
    assert rows.detector.tolist() == ["zscore", "patch_nn"] and (rows.category == "digit3").all()
    cat = experiments.load_category("embedded", "digit3", size=16, seed=0)     # the same images as a direct run
    direct = experiments.run(detectors.build("zscore"), cat, dataset="embedded", seed=0, device="cpu")
    assert rows.image_auroc.iloc[0] == direct.metrics["image_auroc"] and rows.aupro.iloc[0] == direct.metrics["aupro"]
    with pytest.raises(Exception, match="unknown benchmark category"):
        quality.measure(["zscore"], "embedded", ["cat"], [0], size=16)


def test_mnist_rows_use_notebook_07s_one_class_split():
    cfg = configs.get("cpu", "scoredd_mnist")
    rows = quality.measure(["pixel_nn"], "mnist", ["3"], [0], size=32)
    cat = experiments.load_category("mnist", 3, size=32, seed=0, n_train=cfg.n_train, n_normal=cfg.n_test,
                                    n_anomalous=cfg.n_test)
    assert len(cat.train) == cfg.n_train and cat.test.labels.tolist() == [0] * cfg.n_test + [1] * cfg.n_test
    direct = experiments.run(detectors.build("pixel_nn"), cat, dataset="mnist", seed=0, device="cpu")
    assert rows.image_auroc.iloc[0] == direct.metrics["image_auroc"] and rows.pixel_auroc.isna().all()
    assert quality.build("scoredd_mnist", "mnist", cat, 32, 0, "cpu").settings == \
        cfg.detector(cfg.sde, cfg.sampler).settings


def test_methods_are_built_from_the_cpu_profile():
    cat = experiments.load_category("embedded", "digit3", size=16, seed=0)
    ddad = quality.build("ddad", "embedded", cat, 16, 0, "cpu")
    assert ddad.settings == configs.get("cpu", "ddad", size=16).detector("embedded", "digit3").settings
    assert (quality.build("scoredd_vp", "embedded", cat, 16, 0, "cpu").sampler,
            quality.build("scoredd_ve", "embedded", cat, 16, 0, "cpu").sampler) == ("sde", "flow")   # Table 1
    with pytest.raises(ValueError, match="unknown detector 'spr_x'"):
        quality.build("spr_x", "embedded", cat, 16, 0, "cpu")


def test_training_changes_reach_every_methods_training():
    cat = experiments.load_category("embedded", "digit3", size=16, seed=0)
    assert quality.build("ddad", "embedded", cat, 16, 0, "cpu", {"epochs": 7}).train.epochs == 7
    assert quality.build("scoredd_ve", "embedded", cat, 16, 0, "cpu", {"epochs": 7}).train.epochs == 7
    fast = quality.build("scoredd_ve", "embedded", cat, 16, 0, "cpu", {"schedule": "cosine", "warmup": 20}).train
    assert (fast.schedule, fast.warmup, fast.epochs) == ("cosine", 20, configs.get("cpu", "scoredd_images").train.epochs)
    assert quality.build("scoredd_ve", "embedded", cat, 16, 0, "cpu").train.epochs == \
        configs.get("cpu", "scoredd_images").train.epochs


def test_rows_of_an_epochs_run_sit_beside_the_profiles_rows(tmp_path, monkeypatch):
    """--epochs labels a method's rows 'name (E ep)' (baselines keep their name), so a longer-training run does not
    replace the cpu profile's rows in the same CSV."""
    monkeypatch.setenv("SCOREVIZ_CACHE", str(tmp_path))
    rows = quality.measure(["ddad", "zscore"], "embedded", ["digit3"], [0], size=16, train={"epochs": 1})
    assert rows.detector.tolist() == ["ddad (1 ep)", "zscore"]
    assert quality._label("spr", {"epochs": 9, "schedule": "cosine", "ema_warmup": True}) == \
        "spr (9 ep, schedule=cosine, ema_warmup=True)"


def test_bad_training_settings_stop_before_any_work():
    with pytest.raises(SystemExit, match="--set takes KEY=VALUE with KEY one of: .*warmup"):
        quality.main(["--set", "warmups=3"])
    with pytest.raises(SystemExit, match="give the epochs with --epochs N"):
        quality.main(["--set", "epochs=3"])


def test_convergence_reach_finds_the_first_fast_budget_at_the_paper_recipes_final_value():
    from benchmarks.convergence import reach

    rows = pd.DataFrame({"category": ["a"] * 5 + ["b"] * 3 + ["a"] * 2, "seed": [0] * 8 + [1] * 2,
                         "recipe": ["paper", "paper", "fast", "fast", "fast", "paper", "fast", "fast", "paper", "fast"],
                         "epochs": [100, 300, 10, 20, 40, 300, 10, 20, 300, 10],
                         "train_s": [100.0, 300.0, 5.0, 10.0, 20.0, 300.0, 5.0, 10.0, 200.0, 4.0],
                         "image_auroc": [0.95, 0.80, 0.70, 0.81, 0.90, 0.90, 0.5, 0.6, 0.6, 0.7]})
    table = reach(rows).set_index(["category", "seed"])
    assert len(table) == 3                                      # one row per category and seed
    assert table.loc[("a", 0), "paper image_auroc"] == 0.80    # the longest budget's value, not the best one
    assert (table.loc[("a", 0), "fast epochs"], table.loc[("a", 0), "share of time"]) == (20, 10.0 / 300.0)
    assert table.loc[("a", 1), "share of time"] == 4.0 / 200.0  # each seed against its own paper run
    assert pd.isna(table.loc[("b", 0), "fast epochs"]) and pd.isna(table.loc[("b", 0), "share of time"])  # never reached


def test_convergence_rows_of_a_new_seed_join_the_old_ones(tmp_path, monkeypatch):
    from benchmarks import convergence

    monkeypatch.setattr(convergence, "HERE", tmp_path)
    monkeypatch.setattr(convergence.plots, "save_figure", lambda fig, name, out: None)

    def rows(cat, seed, auroc):
        return pd.DataFrame({"category": [cat] * 2, "seed": [seed] * 2, "recipe": ["paper", "fast"], "epochs": [30, 10],
                             "train_s": [30.0, 5.0], "image_auroc": [auroc] * 2, "pixel_auroc": [auroc] * 2})
    convergence.save(pd.concat([rows("grass", 0, 0.8), rows("digit3", 0, 0.7)]), 32)
    convergence.save(rows("grass", 1, 0.6), 32)             # another seed: added
    convergence.save(rows("digit3", 0, 0.9), 32)            # the same category and seed: replaced
    saved = pd.read_csv(tmp_path / "quality" / "convergence.csv")
    assert sorted(set(zip(saved.category, saved.seed, saved.image_auroc))) == [
        ("digit3", 0, 0.9), ("grass", 0, 0.8), ("grass", 1, 0.6)]
    assert len(saved) == 6
