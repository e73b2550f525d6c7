"""Tests for scoreviz.paper: lookups by lenient names and their errors, table, compare, benchmark_table, the
numbers Score-DD gives in prose. The typed tables themselves are tested in test_paper_tables.py."""
import math

import numpy as np
import pandas as pd
import pytest

from scoreviz import paper as P
from scoreviz.data import CATEGORIES as DATA_CATEGORIES
from scoreviz.paper import (
    CATEGORIES,
    REPORTED,
    REPORTED_BY_VARIANT,
    UnknownKeyError,
    canonical_category,
    compare,
    reported,
    table,
)


# ------------------------------------------------------------------ Score-DD's costs, sources
def test_scoredd_network_calls():
    calls = P.NETWORK_CALLS["scoredd"]
    T, r, t_times_S = 5, 1, 250
    assert calls["t_scales"] == T * (r + 2) == 15
    assert calls["no_t_scales"] == t_times_S - 1 + 2 == 251
    assert calls["anoddpm"] == t_times_S == 250
    assert "5.5" in P.NETWORK_CALLS_SOURCE


def test_source_cites_the_table():
    assert "Table 4" in P.source("spr", "mvtec", "image_auroc")
    assert "Table 1" in P.source("spr", "mvtec", "pixel_auroc")
    assert "Table 5" in P.source("spr", "mvtec", "image_auroc", variant="n1")
    assert "Ours^ii" in P.source("scoredd", "mvtec", "image_auroc", variant="vp")
    assert "Table 2" in P.source("scoredd", "btad", "pixel_auroc")


# ------------------------------------------------------------------ lookups and errors
@pytest.mark.parametrize("args,words", [
    (("nope", "mvtec", "image_auroc"), ["paper", "'nope'", "spr", "scoredd", "ddad"]),
    (("spr", "visa", "image_auroc"), ["dataset", "'visa'", "mvtec", "btad", "mpdd"]),
    (("ddad", "mnist", "image_auroc"), ["dataset", "mvtec", "visa"]),
    (("spr", "mvtec", "pro"), ["metric", "'pro'", "image_auroc", "pixel_auroc"]),
    (("spr", "btad", "image_auroc"), ["metric", "pixel_auroc"]),
])
def test_reported_unknown_keys_list_the_valid_ones(args, words):
    with pytest.raises(ValueError) as err:
        reported(*args)
    for w in words:
        assert w in str(err.value)
    assert isinstance(err.value, KeyError)
    assert not str(err.value).startswith('"')      # a readable message, not a repr


def test_reported_unknown_variant_lists_the_valid_ones():
    with pytest.raises(UnknownKeyError, match=r"variant 'ours'.*ve, vp, subvp"):
        reported("scoredd", "mvtec", "image_auroc", variant="ours")


def test_reported_lenient_names_and_copy():
    assert reported("Score-DD", "MVTec_AD", "image", variant="sub-VP") == \
        REPORTED_BY_VARIANT["scoredd"]["mvtec"]["subvp"]["image_auroc"]
    assert reported("SPR", "MVTec", "image_auroc", variant="N=1")["mean"] == 0.975
    assert reported("ddad", "visa", "AUPRO")["mean"] == 0.927
    got = reported("spr", "mvtec", "image_auroc")
    got["mean"] = 0.0
    assert REPORTED["spr"]["mvtec"]["image_auroc"]["mean"] == 0.977


@pytest.mark.parametrize("dataset,names,expected", [
    ("mvtec", ["metal_nut", "Metal nut", "metalnut", "Metal Nut", "MN", "metal-nut", "Metalnut"], "metal_nut"),
    ("mvtec", ["Hazel nut", "HZ", "HN", "hazelnut"], "hazelnut"),
    ("mvtec", ["TB", "Toothbrush"], "toothbrush"),
    ("mvtec", ["TS", "Transistor"], "transistor"),
    ("mvtec", ["Average", "avg", "Mean"], "mean"),
    ("visa", ["Chewing gum", "chewinggum", "chewing_gum"], "chewinggum"),
    ("visa", ["Pipe fryum", "pipe_fryum", "pipefryum"], "pipe_fryum"),
    ("visa", ["PCB1", "pcb1"], "pcb1"),
    ("visa", ["Macaroni2"], "macaroni2"),
    ("btad", ["01", "1", 1, "Product 01", "product_1"], "01"),
    ("btad", ["03", 3], "03"),
    ("mpdd", ["Bracket black", "BBK", "bracket_black"], "bracket_black"),
    ("mpdd", ["MP", "Metal plate"], "metal_plate"),
    ("mpdd", ["Tubes"], "tubes"),
    ("mnist", ["7", 7, "07", "digit 7"], "7"),
    ("mnist", ["0", 0], "0"),
])
def test_canonical_category(dataset, names, expected):
    for name in names:
        assert canonical_category(name, dataset) == expected, name


@pytest.mark.parametrize("name,dataset", [("bolt", "mvtec"), ("4", "btad"), ("10", "mnist"),
                                          ("pcb5", "visa"), ("HZ", "visa")])
def test_canonical_category_rejects_unknown(name, dataset):
    with pytest.raises(ValueError, match="valid categories"):
        canonical_category(name, dataset)


def test_canonical_category_unknown_dataset():
    with pytest.raises(ValueError, match="valid datasets: mvtec, btad, mpdd, visa, mnist"):
        canonical_category("carpet", "kitti")


# ------------------------------------------------------------------ table and compare
def test_table_layout():
    df = table("spr", "mvtec")
    assert list(df.columns) == ["image_auroc", "pixel_auroc"]
    assert list(df.index) == list(CATEGORIES["mvtec"]) + ["mean"]
    assert df.loc["carpet", "image_auroc"] == 0.917 and df.loc["mean", "pixel_auroc"] == 0.974
    assert "Table 4" in df.attrs["sources"]["image_auroc"]

    df = table("ddad", "visa", metrics=("pro", "image_auroc"))
    assert list(df.columns) == ["pro", "image_auroc"]
    assert df.shape == (13, 2) and df.index[-1] == "mean"

    df = table("scoredd", "mvtec", "image_auroc", variant="vp")
    assert df.shape == (16, 1) and df.loc["mean", "image_auroc"] == 0.964


def test_table_missing_values_are_nan():
    df = table("scoredd", "mvtec", variant="padim")     # image AUROC: average only
    assert df["image_auroc"].drop("mean").isna().all()
    assert df.loc["mean", "image_auroc"] == 0.979
    assert df["pixel_auroc"].notna().all()
    df = table("scoredd", "mnist")
    assert list(df.index) == ["mean"] and df.iloc[0, 0] == 0.9544


def test_table_unknown_metric():
    with pytest.raises(ValueError, match="valid metrics: image_auroc, pixel_auroc"):
        table("spr", "mvtec", metrics=["image_auroc", "f1"])


def test_compare_aligns_and_diffs():
    measured = {"Metal nut": 0.95, "carpet": 0.90, "HZ": 0.99, "mean": 0.97}
    df = compare(measured, "spr", "mvtec", "image_auroc")
    assert list(df.columns) == ["paper", "measured", "diff"]
    assert list(df.index) == list(CATEGORIES["mvtec"]) + ["mean"]
    assert df.loc["metal_nut", "paper"] == 0.966
    assert df.loc["metal_nut", "diff"] == pytest.approx(0.95 - 0.966)
    assert df.loc["carpet", "diff"] == pytest.approx(0.90 - 0.917)
    assert df.loc["hazelnut", "measured"] == 0.99
    assert df.loc["mean", "diff"] == pytest.approx(0.97 - 0.977)
    missing = df.drop(["metal_nut", "carpet", "hazelnut", "mean"])
    assert missing["measured"].isna().all() and missing["diff"].isna().all()
    assert missing["paper"].notna().all()
    assert "Table 4" in df.attrs["source"]


def test_compare_categories_only_one_side_has():
    # Score-DD gives only the MNIST average: measured digits appear with paper = NaN
    df = compare({str(d): 0.9 + d / 100 for d in range(10)}, "scoredd", "mnist", "image_auroc")
    assert list(df.index) == [str(d) for d in range(10)] + ["mean"]
    assert df["paper"].drop("mean").isna().all() and df.loc["mean", "paper"] == 0.9544
    assert math.isnan(df.loc["mean", "measured"]) and math.isnan(df.loc["mean", "diff"])
    assert df.loc["3", "measured"] == pytest.approx(0.93)


def test_compare_variant_and_nan_measured():
    df = compare({"01": 0.5, "02": float("nan")}, "spr", "btad", "pixel_auroc", variant="vt_adl")
    assert df.loc["01", "diff"] == pytest.approx(0.5 - 0.99)
    assert math.isnan(df.loc["02", "diff"]) and df.loc["02", "paper"] == 0.94
    assert isinstance(df, pd.DataFrame) and df.attrs["variant"] == "vt_adl"


@pytest.mark.parametrize("measured,match", [
    ({"carpet": 91.7}, "fractions, not percentages"),
    ({"carpet": -0.1}, "outside"),
    ({"carpet": 0.9, "Carpet": 0.8}, "twice"),
    ({"kitten": 0.9}, "valid categories"),
])
def test_compare_rejects_bad_input(measured, match):
    with pytest.raises(ValueError, match=match):
        compare(measured, "spr", "mvtec", "image_auroc")


# ------------------------------------------------------------------ benchmark_table
#: where SPR reports each (dataset, metric), read off the paper
SPR_TABLES = {("mvtec", "image_auroc"): "Table 4", ("mvtec", "pixel_auroc"): "Table 1",
              ("btad", "pixel_auroc"): "Table 2", ("mpdd", "pixel_auroc"): "Table 3"}


@pytest.mark.parametrize("dataset", ["mvtec", "btad", "mpdd", "textures"])
def test_benchmark_table_in_the_papers_layout(dataset):
    cats = DATA_CATEGORIES[dataset]
    rows = [{"dataset": dataset, "category": c, "method": m, "seed": s, "image_auroc": 0.9 + 0.001 * i + 0.01 * s,
             "pixel_auroc": 0.95, "aupro": 0.8} for i, c in enumerate(cats) for m in ("paper", "label_free")
            for s in (0, 1)]
    results = pd.DataFrame(rows)
    for metric in ("image_auroc", "pixel_auroc", "aupro"):
        table, compared = P.benchmark_table(results, "spr", dataset, metric, {"paper": "ours", "label_free": "free"})
        assert list(table.columns) == ["mean", *cats]
        ours = [r[metric] for r in rows if r["method"] == "paper"]
        assert table.loc["ours", "mean"] == pytest.approx(np.mean(ours))              # seeds averaged first
        first = [r[metric] for r in rows if r["method"] == "paper" and r["category"] == cats[0]]
        assert table.loc["ours", cats[0]] == pytest.approx(np.mean(first))
        if (dataset, metric) in SPR_TABLES:
            ref = P.reported("spr", dataset, metric)
            assert table.index[0] == f"SPR (paper, {SPR_TABLES[dataset, metric]})" and table.iloc[0]["mean"] == ref["mean"]
            assert table.iloc[0][cats[0]] == ref[cats[0]]
            assert compared.loc["mean", "measured"] == pytest.approx(table.loc["ours", "mean"])
        else:
            assert compared is None and list(table.index) == ["ours", "free"]
    with pytest.raises(ValueError, match="no results"):
        P.benchmark_table(results, "spr", "visa", "image_auroc")
    with pytest.raises(ValueError, match="official"):
        P.benchmark_table(results, "spr", dataset, "image_auroc", {"official": "x"})
