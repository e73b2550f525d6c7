"""The three papers' reported numbers (SPR, Score-DD, DDAD), typed once, for side-by-side tables.

Units: every value is a **fraction in [0, 1]**; the papers print percentages, and the
papers' own rounding is kept (97.7 -> 0.977, 95.44 -> 0.9544). The tables themselves
live in :mod:`scoreviz.paper_tables`: the papers' tables pasted as small whitespace-separated
blocks in percent, in the papers' own row/column orientation (so a reader can check them
against the PDF line by line), parsed once at import. A ``-`` is a value the paper does not
report; it is left out. This module serves them by name.

Keys (all lower case, see :data:`PAPERS`, :data:`CATEGORIES`, :data:`METRICS`):

- paper: ``"spr"``, ``"scoredd"``, ``"ddad"``;
- dataset: ``"mvtec"``, ``"btad"``, ``"mpdd"``, ``"visa"``, ``"mnist"``;
- metric: ``"image_auroc"``, ``"pixel_auroc"``, ``"pro"``;
- variant: the row/column of the paper's table: the proposed method (``"ours"``; Score-DD:
  ``"ve"``, ``"vp"``, ``"subvp"``), its ablations (SPR ``"n1"``, ``"n3"``, ``"n5"``,
  ``"optimal_k"``; Score-DD ``"recon_loss"``, ``"no_t_scales"``, ``"t_scales"``) and the
  baselines the paper's table lists (``"patchcore"``, ``"riad"``, ...);
- category: dataset folder names (``"metal_nut"``, ``"01"``, ``"pipe_fryum"``, ``"7"``),
  plus ``"mean"`` for the paper's printed average (never recomputed here).

Public data:

- :data:`REPORTED` ``[paper][dataset][metric] -> {category: value}``: the proposed
  method's headline result (the default variant, :data:`DEFAULT_VARIANT`).
- :data:`REPORTED_BY_VARIANT` ``[paper][dataset][variant][metric] -> {category: value}``:
  everything typed, baselines and ablations included.
- :data:`SOURCES` ``[(paper, dataset, variant, metric)] -> str``: where each table comes
  from (paper, table number, row), for citing in a report.
- :data:`DECIMALS` ``[(paper, dataset, variant, metric)] -> (per_category, mean)``: how many
  decimals the paper printed (sets the rounding tolerance of consistency checks).
- :data:`KNOWN_INCONSISTENCIES`: tables whose printed average is not the mean of their
  rows within rounding, with the observed difference; :data:`NOTES`: other remarks
  (text vs table, missing values).
- :data:`DDAD_SETTINGS` ``[dataset][category] -> {"w", "epochs", "fe_epochs"}`` (DDAD README).
- :data:`NETWORK_CALLS`: Score-DD's cost numbers (score-network evaluations per image).

Functions: :func:`reported`, :func:`table`, :func:`compare`, :func:`canonical_category`,
:func:`source`. Names are matched ignoring case, spaces and punctuation (``"Score-DD"``,
``"MVTec_AD"``, ``"sub-VP"``, ``"Metal nut"``); an unknown name raises
:class:`UnknownKeyError` (a ValueError and a KeyError) listing the valid ones.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from .paper_tables import (
    CATEGORIES,
    DDAD_SETTINGS,
    DDAD_SETTINGS_SOURCE,
    DECIMALS,
    DEFAULT_VARIANT,
    KNOWN_INCONSISTENCIES,
    MEAN,
    METRICS,
    NOTES,
    PAPERS,
    REPORTED,
    REPORTED_BY_VARIANT,
    SHORT_CITATIONS,
    SOURCES,
)

__all__ = [
    "PAPERS", "CATEGORIES", "METRICS", "MEAN", "DEFAULT_VARIANT", "REPORTED",
    "REPORTED_BY_VARIANT", "SOURCES", "DECIMALS", "KNOWN_INCONSISTENCIES", "NOTES",
    "DDAD_SETTINGS", "DDAD_SETTINGS_SOURCE", "NETWORK_CALLS", "NETWORK_CALLS_SOURCE", "reported", "table", "compare",
    "canonical_category", "source", "UnknownKeyError", "benchmark_table",
]

# Score-DD Sec. 5.5: score-network evaluations per test image (S = 2000 steps, start
# t = 250/2000; T scales {t} = {250, 200, 150, 100, 50}/2000, T = 5, r = 1).
NETWORK_CALLS: dict[str, dict[str, int]] = {
    "scoredd": {
        "t_scales": 15,        # O(T * (r + 2)) = 5 * 3
        "no_t_scales": 251,    # O(t * S - 1 + 2), t * S = 250
        "anoddpm": 250,        # O(t * S): full reconstruction from t = 250/2000
    },
}
NETWORK_CALLS_SOURCE = f"{SHORT_CITATIONS['scoredd']}, Sec. 5.5 (Computational complexity)"


# Abbreviations the papers print, beyond what squashing case/space/punctuation resolves.
_ABBREVIATIONS: dict[str, dict[str, str]] = {
    "mvtec": {"hz": "hazelnut", "hn": "hazelnut", "mn": "metal_nut", "tb": "toothbrush",
              "ts": "transistor"},
    "mpdd": {"bbk": "bracket_black", "bbn": "bracket_brown", "bwh": "bracket_white",
             "cn": "connector", "mp": "metal_plate"},
}
_MEAN_ALIASES = ("mean", "average", "avg")


def _squash(name) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


# ================================================================== lookups
class UnknownKeyError(KeyError, ValueError):
    """An unknown paper/dataset/variant/metric/category; the message lists the valid ones.

    Both a KeyError (dictionary-style lookup) and a ValueError (bad argument).
    """

    def __str__(self) -> str:            # KeyError would print the message's repr
        return str(self.args[0]) if self.args else ""


def _pick(kind: str, name, valid, aliases: Mapping[str, str] | None = None,
          where: str = "") -> str:
    """Resolve a user-given key against the valid ones, ignoring case and punctuation."""
    valid = list(valid)
    if name in valid:
        return name
    squashed = {_squash(v): v for v in valid}
    for k, v in (aliases or {}).items():
        if v in valid:
            squashed.setdefault(_squash(k), v)
    hit = squashed.get(_squash(name))
    if hit is None:
        raise UnknownKeyError(f"unknown {kind} {name!r}{where}; valid {kind}s: {', '.join(valid)}")
    return hit


_PAPER_ALIASES = {"score-dd": "scoredd", "score_dd": "scoredd"}
_DATASET_ALIASES = {"mvtec_ad": "mvtec", "beantech": "btad"}
_METRIC_ALIASES = {"image": "image_auroc", "img": "image_auroc", "i_auroc": "image_auroc",
                   "pixel": "pixel_auroc", "p_auroc": "pixel_auroc", "aupro": "pro"}


def _resolve(paper, dataset, metric=None, variant=None):
    paper = _pick("paper", paper, REPORTED_BY_VARIANT, _PAPER_ALIASES)
    dataset = _pick("dataset", dataset, REPORTED_BY_VARIANT[paper], _DATASET_ALIASES,
                    f" for paper {paper!r}")
    variants = REPORTED_BY_VARIANT[paper][dataset]
    if variant is None:
        variant = DEFAULT_VARIANT[paper][dataset]
    variant = _pick("variant", variant, variants, None, f" for {paper}/{dataset}")
    if metric is not None:
        metric = _pick("metric", metric, variants[variant], _METRIC_ALIASES,
                       f" for {paper}/{dataset}/{variant}")
    return paper, dataset, metric, variant


def canonical_category(name, dataset: str) -> str:
    """Folder name of a category as papers print it: ``"Metal nut"``/``"MN"`` -> ``"metal_nut"``.

    Case, spaces and punctuation are ignored; BTAD products may be ``1``, ``"01"`` or
    ``"Product 01"``; MNIST digits may be ints. ``"Average"``/``"avg"`` -> ``"mean"``.
    Raises ValueError naming the valid categories if nothing matches.
    """
    dataset = _pick("dataset", dataset, CATEGORIES, _DATASET_ALIASES)
    valid = CATEGORIES[dataset]
    key = _squash(name)
    if key in _MEAN_ALIASES:
        return MEAN
    if dataset in ("btad", "mnist"):
        digits = re.sub(r"^(product|class|digit)", "", key)
        if digits.isdigit():
            key = f"{int(digits):02d}" if dataset == "btad" else str(int(digits))
    for cat in valid:
        if _squash(cat) == key:
            return cat
    hit = _ABBREVIATIONS.get(dataset, {}).get(key)
    if hit is None:
        raise UnknownKeyError(f"unknown category {name!r} for dataset {dataset!r}; valid "
                              f"categories: {', '.join(valid)}, {MEAN}")
    return hit


def reported(paper: str, dataset: str, metric: str, *, variant: str | None = None) -> dict[str, float]:
    """A paper's reported numbers for one table column: ``{category: fraction}``, ``"mean"`` last.

    ``variant=None`` is the proposed method's headline result (:data:`DEFAULT_VARIANT`).
    Returns a copy. Raises ValueError listing the valid papers/datasets/variants/metrics.
    """
    paper, dataset, metric, variant = _resolve(paper, dataset, metric, variant)
    return dict(REPORTED_BY_VARIANT[paper][dataset][variant][metric])


def source(paper: str, dataset: str, metric: str, *, variant: str | None = None) -> str:
    """Citation of the table a :func:`reported` column comes from (paper, table, row)."""
    paper, dataset, metric, variant = _resolve(paper, dataset, metric, variant)
    return SOURCES[(paper, dataset, variant, metric)]


def _row_order(dataset: str, names) -> list[str]:
    names = set(names)
    return [c for c in CATEGORIES[dataset] + (MEAN,) if c in names]


def table(paper: str, dataset: str, metrics: str | Sequence[str] | None = None,
          variant: str | None = None) -> pd.DataFrame:
    """A paper's table as a DataFrame: categories as rows (folder order, ``"mean"`` last),
    metrics as columns, fractions in [0, 1]; NaN where the paper gives no number.

    ``metrics=None`` takes every metric the variant reports. ``df.attrs["sources"]`` maps
    each column to its citation.
    """
    paper, dataset, _, variant = _resolve(paper, dataset, None, variant)
    available = REPORTED_BY_VARIANT[paper][dataset][variant]
    if metrics is None:
        metrics = [m for m in METRICS if m in available]
    elif isinstance(metrics, str):
        metrics = [metrics]
    metrics = [_resolve(paper, dataset, m, variant)[2] for m in metrics]
    rows = _row_order(dataset, [c for m in metrics for c in available[m]])
    df = pd.DataFrame({m: [available[m].get(c, math.nan) for c in rows] for m in metrics},
                      index=pd.Index(rows, name="category"), dtype=float)
    df.attrs["sources"] = {m: SOURCES[(paper, dataset, variant, m)] for m in metrics}
    df.attrs["variant"] = variant
    return df


def compare(measured: Mapping[str, float], paper: str, dataset: str, metric: str,
            variant: str | None = None) -> pd.DataFrame:
    """Side-by-side table of our numbers and a paper's: columns ``paper``, ``measured``,
    ``diff`` (= measured - paper), rows matched by category name.

    ``measured`` maps category names (any spelling :func:`canonical_category` accepts) to
    fractions in [0, 1]; a ``"mean"`` entry is compared with the paper's printed average
    (not computed here). Rows: the union of both, folder order, ``"mean"`` last; a
    category missing on either side shows NaN. Raises ValueError for unknown or duplicate
    category names and for values outside [0, 1] (percentages).
    """
    paper, dataset, metric, variant = _resolve(paper, dataset, metric, variant)
    ref = REPORTED_BY_VARIANT[paper][dataset][variant][metric]
    ours: dict[str, float] = {}
    for name, value in measured.items():
        cat = canonical_category(name, dataset)
        if cat in ours:
            raise ValueError(f"category {cat!r} given twice in measured (as {name!r})")
        value = float(value)
        if not math.isnan(value) and not 0.0 <= value <= 1.0:
            raise ValueError(f"measured[{name!r}] = {value} is outside [0, 1]; "
                             "give fractions, not percentages")
        ours[cat] = value
    rows = _row_order(dataset, list(ref) + list(ours))
    df = pd.DataFrame({"paper": [ref.get(c, math.nan) for c in rows],
                       "measured": [ours.get(c, math.nan) for c in rows]},
                      index=pd.Index(rows, name="category"), dtype=float)
    df["diff"] = df["measured"] - df["paper"]
    df.attrs["source"] = SOURCES[(paper, dataset, variant, metric)]
    df.attrs["metric"] = metric
    df.attrs["variant"] = variant
    return df


def benchmark_table(results: pd.DataFrame, paper: str, dataset: str, metric: str,
                    labels: Mapping[str, str] | None = None, *, column: str = "method"):
    """Measured results in the layout of a paper's results tables (SPR Tables 1-4): methods as rows,
    ``"mean"`` and then the categories as columns, fractions; returns ``(table, compared)``.

    ``results`` has columns ``dataset``, ``category``, ``column`` (the method: the ``method`` of
    ``experiments.results_table``) and ``metric``; several rows of a method and category (seeds)
    are averaged. ``labels`` maps methods to row names, in row order (default: every method, in
    order of appearance); categories keep their order of appearance. When the paper reports
    ``metric`` on ``dataset`` for its proposed method, that row comes first, named after its
    table, and ``compared`` is :func:`compare` of the first method; otherwise ``compared`` is None.
    """
    part = results[results["dataset"] == dataset]
    if part.empty:
        raise ValueError(f"no results for dataset {dataset!r}; have {sorted(results['dataset'].unique())}")
    labels = dict(labels) if labels is not None else {m: m for m in part[column].unique()}
    missing = sorted(set(labels) - set(part[column]))
    if missing:
        raise ValueError(f"no results for {column} {missing} on {dataset!r}; have {sorted(part[column].unique())}")
    cats = list(dict.fromkeys(part["category"]))
    wide = part.groupby([column, "category"], sort=False)[metric].mean().unstack("category")
    wide = wide.reindex(index=list(labels), columns=cats)
    wide.insert(0, MEAN, wide.mean(axis=1))
    wide.index = [labels[m] for m in wide.index]
    wide.columns.name = "category"
    try:
        ref = reported(paper, dataset, metric)
        cite = source(paper, dataset, metric)
    except UnknownKeyError:
        return wide, None
    name = SHORT_CITATIONS[_resolve(paper, dataset)[0]].split(" (")[0]
    where = re.search(r"Table \w+", cite)
    row = pd.DataFrame([{MEAN: ref[MEAN], **{c: ref.get(canonical_category(c, dataset), math.nan) for c in cats}}],
                       index=[f"{name} (paper, {where.group(0) if where else cite})"])
    measured = wide.loc[labels[next(iter(labels))]]
    return pd.concat([row, wide]), compare(measured.to_dict(), paper, dataset, metric)
