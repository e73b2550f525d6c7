"""Tests for scoreviz.paper_tables: internal consistency of the typed tables, spot values, DDAD settings.

Rounding tolerance for "average = mean of the rows": a paper printing values with d
decimals (in percent) is off by at most 0.5 * 10**-d per value, so the mean of the
printed rows is within 0.5 * 10**-d_rows of the true mean, and the printed average
within 0.5 * 10**-d_mean of it: |mean(rows) - average| <= 0.5 * (10**-d_rows +
10**-d_mean) percentage points (0.1 pp for one-decimal tables). Larger differences must
be listed in KNOWN_INCONSISTENCIES with exactly the difference observed.
"""
import numpy as np
import pytest

from scoreviz.data import CATEGORIES as DATA_CATEGORIES
from scoreviz.paper_tables import (
    CATEGORIES,
    DDAD_SETTINGS,
    DDAD_SETTINGS_SOURCE,
    DECIMALS,
    DEFAULT_VARIANT,
    KNOWN_INCONSISTENCIES,
    MEAN,
    NOTES,
    REPORTED,
    REPORTED_BY_VARIANT,
    SOURCES,
)

ALL = [(p, d, v, m) for p, ds in REPORTED_BY_VARIANT.items() for d, vs in ds.items()
       for v, ms in vs.items() for m in ms]
WITH_ROWS = [k for k in ALL if set(REPORTED_BY_VARIANT[k[0]][k[1]][k[2]][k[3]]) - {MEAN}]


def values(key):
    p, d, v, m = key
    return REPORTED_BY_VARIANT[p][d][v][m]


def column(paper, dataset, metric, variant=None):
    """One typed column {category: fraction}; variant None is the paper's proposed method (DEFAULT_VARIANT)."""
    return REPORTED_BY_VARIANT[paper][dataset][variant or DEFAULT_VARIANT[paper][dataset]][metric]


def tolerance(key):
    """Rounding tolerance (fraction) for mean(rows) vs the printed average, see module doc."""
    d_rows, d_mean = DECIMALS[key]
    return 0.5 * (10.0 ** -d_rows + 10.0 ** -d_mean) / 100 + 1e-9


# ------------------------------------------------------------------ internal consistency
def test_tables_were_typed():
    assert len(ALL) == 93          # SPR 42, Score-DD 45, DDAD 6 (counted by hand)
    assert len(WITH_ROWS) == 69    # SPR 35, Score-DD 28, DDAD 6
    assert sum(len(values(k)) for k in ALL) == 888   # SPR 432, Score-DD 369, DDAD 87


@pytest.mark.parametrize("key", WITH_ROWS, ids="/".join)
def test_average_is_mean_of_rows_within_rounding(key):
    vals = values(key)
    dataset = key[1]
    # a table either gives every category of its dataset or none
    assert set(vals) == set(CATEGORIES[dataset]) | {MEAN}
    diff = np.mean([vals[c] for c in CATEGORIES[dataset]]) - vals[MEAN]
    if key in KNOWN_INCONSISTENCIES:
        recorded, note = KNOWN_INCONSISTENCIES[key]
        assert abs(diff - recorded) < 1e-6, f"observed {diff:.6f}, recorded {recorded}"
        assert abs(diff) > tolerance(key), "listed as inconsistent but agrees within rounding"
        assert note
    else:
        assert abs(diff) <= tolerance(key), f"mean of rows - average = {diff * 100:+.3f} pp"


def test_known_inconsistencies_are_real_tables():
    assert set(KNOWN_INCONSISTENCIES) <= set(WITH_ROWS)
    assert len(KNOWN_INCONSISTENCIES) == 6


def test_proposed_methods_are_internally_consistent():
    """None of the papers' own headline tables needs a KNOWN_INCONSISTENCIES entry."""
    for p, ds in DEFAULT_VARIANT.items():
        for d, v in ds.items():
            for m in REPORTED_BY_VARIANT[p][d][v]:
                assert (p, d, v, m) not in KNOWN_INCONSISTENCIES


@pytest.mark.parametrize("key", ALL, ids="/".join)
def test_values_are_fractions_with_the_papers_rounding(key):
    d_rows, d_mean = DECIMALS[key]
    for cat, v in values(key).items():
        assert isinstance(v, float) and 0.0 <= v <= 1.0
        decimals = d_mean if cat == MEAN else d_rows
        pct = v * 100
        assert abs(pct - round(pct, decimals)) < 1e-9, (cat, v)
        assert v == round(v, 6)


@pytest.mark.parametrize("key", ALL, ids="/".join)
def test_category_names_are_folder_names(key):
    cats = list(values(key))
    assert set(cats) <= set(CATEGORIES[key[1]]) | {MEAN}
    order = list(CATEGORIES[key[1]]) + [MEAN]
    assert cats == sorted(cats, key=order.index)      # folder order, mean last


def test_categories_match_the_data_module():
    for dataset, cats in CATEGORIES.items():
        assert DATA_CATEGORIES[dataset] == cats


def test_every_entry_has_a_source():
    assert set(SOURCES) == set(ALL)
    for (p, d, v, m), text in SOURCES.items():
        assert ("Table" in text or "Fig. 6" in text or "README" in text), text


def test_notes_refer_to_typed_tables():
    assert set(NOTES) <= set(SOURCES)
    assert all(isinstance(text, str) and text for text in NOTES.values())


def test_reported_is_the_default_variant():
    for p, ds in DEFAULT_VARIANT.items():
        assert set(REPORTED[p]) == set(ds)
        for d, v in ds.items():
            assert REPORTED[p][d] == REPORTED_BY_VARIANT[p][d][v]
    assert REPORTED["spr"]["mvtec"]["image_auroc"]["mean"] == 0.977


# ------------------------------------------------------------------ spot values
# (paper, dataset, metric, variant, category, percent), from paper_facts.md and the papers
SPOT = [
    ("spr", "mvtec", "image_auroc", None, "mean", 97.7),
    ("spr", "mvtec", "pixel_auroc", None, "mean", 97.4),
    ("spr", "btad", "pixel_auroc", None, "mean", 96.0),
    ("spr", "mpdd", "pixel_auroc", None, "mean", 96.8),
    ("spr", "mvtec", "image_auroc", "n1", "mean", 97.5),
    ("spr", "mvtec", "pixel_auroc", "n1", "mean", 97.3),
    ("spr", "mvtec", "image_auroc", "n3", "mean", 97.7),
    ("spr", "mvtec", "pixel_auroc", "n3", "mean", 97.4),
    ("spr", "mvtec", "image_auroc", "n5", "mean", 97.7),
    ("spr", "mvtec", "pixel_auroc", "n5", "mean", 97.4),
    ("spr", "mvtec", "image_auroc", "optimal_k", "mean", 98.9),
    ("spr", "mvtec", "image_auroc", None, "carpet", 91.7),
    ("spr", "mvtec", "image_auroc", None, "transistor", 98.7),
    ("spr", "mvtec", "pixel_auroc", None, "bottle", 95.9),
    ("spr", "mvtec", "pixel_auroc", None, "screw", 99.5),
    ("spr", "btad", "pixel_auroc", None, "01", 96.7),
    ("spr", "mpdd", "pixel_auroc", None, "bracket_white", 86.2),
    ("scoredd", "mvtec", "image_auroc", "ve", "mean", 98.2),
    ("scoredd", "mvtec", "pixel_auroc", "ve", "mean", 97.8),
    ("scoredd", "mvtec", "image_auroc", "vp", "mean", 96.4),
    ("scoredd", "mvtec", "pixel_auroc", "vp", "mean", 97.4),
    ("scoredd", "mvtec", "image_auroc", "subvp", "mean", 97.5),
    ("scoredd", "mvtec", "pixel_auroc", "subvp", "mean", 97.2),
    ("scoredd", "btad", "image_auroc", None, "mean", 93.1),
    ("scoredd", "btad", "pixel_auroc", None, "mean", 97.1),
    ("scoredd", "mnist", "image_auroc", None, "mean", 95.44),
    ("scoredd", "mvtec", "image_auroc", "recon_loss", "mean", 84.85),
    ("scoredd", "mvtec", "pixel_auroc", "recon_loss", "mean", 89.34),
    ("scoredd", "mvtec", "image_auroc", "no_t_scales", "mean", 91.30),
    ("scoredd", "mvtec", "pixel_auroc", "no_t_scales", "mean", 96.24),
    ("scoredd", "mvtec", "image_auroc", "t_scales", "mean", 98.24),
    ("scoredd", "mvtec", "pixel_auroc", "t_scales", "mean", 97.78),
    ("scoredd", "mvtec", "image_auroc", "ve", "carpet", 96.9),
    ("scoredd", "mvtec", "pixel_auroc", "subvp", "bottle", 95.7),
    ("scoredd", "btad", "image_auroc", None, "02", 81.1),
    ("ddad", "mvtec", "image_auroc", None, "mean", 99.8),
    ("ddad", "mvtec", "pixel_auroc", None, "mean", 98.1),
    ("ddad", "mvtec", "pro", None, "mean", 92.3),
    ("ddad", "visa", "image_auroc", None, "mean", 98.9),
    ("ddad", "visa", "pixel_auroc", None, "mean", 97.6),
    ("ddad", "visa", "pro", None, "mean", 92.7),
    ("ddad", "mvtec", "pro", None, "wood", 82.9),
    ("ddad", "visa", "image_auroc", None, "cashew", 94.5),
    ("ddad", "visa", "pro", None, "macaroni2", 99.3),
]


@pytest.mark.parametrize("paper,dataset,metric,variant,category,pct", SPOT)
def test_spot_values(paper, dataset, metric, variant, category, pct):
    assert column(paper, dataset, metric, variant=variant)[category] == pytest.approx(pct / 100, abs=1e-12)


def test_cross_table_agreement_within_a_paper():
    # SPR: Table 5's N = 3 row is the setting of Tables 1 and 4
    assert column("spr", "mvtec", "image_auroc", variant="n3")["mean"] == REPORTED["spr"]["mvtec"]["image_auroc"]["mean"]
    assert column("spr", "mvtec", "pixel_auroc", variant="n3")["mean"] == REPORTED["spr"]["mvtec"]["pixel_auroc"]["mean"]
    assert column("spr", "mvtec", "image_auroc", variant="optimal_k")["mean"] > 0.977
    # SPR: the TrustMAE rows of Tables 1 and 4 are identical (see KNOWN_INCONSISTENCIES)
    t1 = column("spr", "mvtec", "pixel_auroc", variant="trustmae")
    t4 = column("spr", "mvtec", "image_auroc", variant="trustmae")
    assert {c: t1[c] for c in CATEGORIES["mvtec"]} == {c: t4[c] for c in CATEGORIES["mvtec"]}
    # Score-DD: the ablation's "w/ T scales" (2 decimals) is the VE column of Table 1
    for metric in ("image_auroc", "pixel_auroc"):
        ve = column("scoredd", "mvtec", metric, variant="ve")
        ablation = column("scoredd", "mvtec", metric, variant="t_scales")["mean"]
        assert abs(ablation - ve["mean"]) <= (0.05 + 0.005) / 100 + 1e-9
        rows_mean = np.mean([ve[c] for c in CATEGORIES["mvtec"]])
        assert abs(ablation - rows_mean) <= (0.05 + 0.005) / 100 + 1e-9


# Baselines printed by both SPR and Score-DD on MVTec: equal except these cells
# (both checked against the papers: the two papers quote different PatchCore numbers).
CROSS_PAPER_DIFFERENCES = {
    ("patchcore", "image_auroc"): {"pill": (0.966, 0.967), "zipper": (0.994, 0.988)},
    ("patchcore", "pixel_auroc"): {"carpet": (0.990, 0.989), "pill": (0.974, 0.971)},
}


def test_baselines_quoted_by_both_papers_agree():
    spr, sdd = REPORTED_BY_VARIANT["spr"]["mvtec"], REPORTED_BY_VARIANT["scoredd"]["mvtec"]
    shared = [(v, m) for v in set(spr) & set(sdd) for m in set(spr[v]) & set(sdd[v])]
    assert sorted(shared) == sorted((v, m) for v in ("cutpaste", "draem", "patchcore", "riad")
                                    for m in ("image_auroc", "pixel_auroc"))
    for v, m in shared:
        a, b = spr[v][m], sdd[v][m]
        assert set(a) == set(b)
        differ = {c: (a[c], b[c]) for c in a if a[c] != b[c]}
        assert differ == CROSS_PAPER_DIFFERENCES.get((v, m), {}), (v, m)
    # VT-ADL on BTAD: same rows in both papers, different printed average
    a = column("spr", "btad", "pixel_auroc", variant="vt_adl")
    b = column("scoredd", "btad", "pixel_auroc", variant="vt_adl")
    assert {c: a[c] for c in CATEGORIES["btad"]} == {c: b[c] for c in CATEGORIES["btad"]}
    assert (a["mean"], b["mean"]) == (0.90, 0.79)


# ------------------------------------------------------------------ DDAD settings, costs
def test_ddad_settings_complete():
    assert set(DDAD_SETTINGS) == {"mvtec", "visa"}
    assert set(DDAD_SETTINGS["mvtec"]) == set(CATEGORIES["mvtec"]) and len(DDAD_SETTINGS["mvtec"]) == 15
    assert set(DDAD_SETTINGS["visa"]) == set(CATEGORIES["visa"]) and len(DDAD_SETTINGS["visa"]) == 12
    for ds in DDAD_SETTINGS.values():
        for s in ds.values():
            assert set(s) == {"w", "epochs", "fe_epochs"}
            assert all(isinstance(x, int) and x >= 0 for x in s.values())
            assert 0 <= s["w"] <= 11 and s["epochs"] >= 500
    assert DDAD_SETTINGS["mvtec"]["carpet"] == {"w": 0, "epochs": 2500, "fe_epochs": 0}
    assert DDAD_SETTINGS["mvtec"]["wood"] == {"w": 11, "epochs": 2000, "fe_epochs": 16}
    assert DDAD_SETTINGS["mvtec"]["metal_nut"] == {"w": 7, "epochs": 3000, "fe_epochs": 1}
    assert DDAD_SETTINGS["mvtec"]["zipper"] == {"w": 10, "epochs": 1000, "fe_epochs": 6}
    assert DDAD_SETTINGS["visa"]["cashew"] == {"w": 0, "epochs": 1750, "fe_epochs": 0}
    assert DDAD_SETTINGS["visa"]["macaroni2"] == {"w": 2, "epochs": 500, "fe_epochs": 11}
    assert DDAD_SETTINGS["visa"]["pipe_fryum"] == {"w": 8, "epochs": 500, "fe_epochs": 6}
    assert set(DDAD_SETTINGS_SOURCE) == {"mvtec", "visa"}
