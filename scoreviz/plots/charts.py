"""Charts of computed numbers: histograms, curves, radar charts, result-table heatmaps, bootstrap intervals.

Score histograms by label, the Gaussian annulus, restoration error and AUROC curves (with a top axis in
SPR's noise std), SPR Fig. 6's radar chart, results tables as heatmaps, and Score-DD's score magnitude
along its two paths. The numbers are computed elsewhere; these functions only draw them.
"""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .style import COLORS, as_numpy, axes_or_new

__all__ = ["plot_histograms", "plot_score_histogram", "plot_annulus", "plot_error_curve", "plot_curve",
           "plot_sigma_axis", "plot_radar", "plot_table_heatmap", "plot_score_along_paths", "plot_intervals"]


def plot_histograms(values: Mapping, *, ax=None, bins: int = 40, colors=None, log_scale: bool = False,
                    xlabel: str | None = None, legend_loc: str = "best"):
    """Overlaid step histograms of named samples {name: values (n,)} on common bins (log-spaced if log_scale).

    Bar heights are the fraction of each sample per bin, so samples of different sizes compare directly.
    """
    ax = axes_or_new(ax)
    data = {k: as_numpy(v).ravel() for k, v in values.items()}
    allv = np.concatenate(list(data.values()))
    edges = np.histogram_bin_edges(np.log10(allv) if log_scale else allv, bins=bins)
    edges = 10**edges if log_scale else edges
    colors = colors or sns.color_palette("deep", len(data))
    for (name, v), c in zip(data.items(), colors):
        ax.hist(v, bins=edges, weights=np.full(len(v), 1.0 / max(len(v), 1)), histtype="stepfilled", alpha=0.45,
                color=c, edgecolor=c, label=name)
    if log_scale:
        ax.set_xscale("log")
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction per bin")
    ax.legend(loc=legend_loc, frameon=True, framealpha=0.85)
    return ax


def plot_score_histogram(scores, labels, *, ax=None, names=("normal", "anomalous"), bins: int = 40,
                         log_scale: bool = False, title: str | None = None, xlabel: str = "anomaly score"):
    """Histograms of scores (B,) split by binary labels (B,) (1 = anomalous), in the suite's colours."""
    s, y = as_numpy(scores).ravel(), as_numpy(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same length, got {s.shape} and {y.shape}")
    values = {f"{names[0]} (n={int((~y).sum())})": s[~y], f"{names[1]} (n={int(y.sum())})": s[y]}
    ax = plot_histograms(values, ax=ax, bins=bins, log_scale=log_scale, xlabel=xlabel,
                         colors=[COLORS["normal"], COLORS["anomalous"]])
    if title:
        ax.set_title(title)
    return ax


def plot_annulus(norms: Mapping, *, ax=None, bins: int = 80, palette="viridis"):
    """Histograms of ||eps|| / sqrt(d) for eps ~ N(0, I_d), one per dimension d (the Gaussian annulus).

    norms maps d -> the norms ||eps|| (n,); they concentrate at 1 after dividing by sqrt(d).
    """
    values = {f"d = {d}": as_numpy(r) / np.sqrt(d) for d, r in sorted(norms.items())}
    ax = plot_histograms(values, ax=ax, bins=bins, colors=sns.color_palette(palette, len(values)),
                         xlabel=r"$\|\epsilon\| / \sqrt{d}$")
    ax.axvline(1.0, color=COLORS["theory"], ls="--", lw=1)
    return ax


def plot_error_curve(distances, errors, *, ax=None, theory=None, label: str | None = None, color=None,
                     logy: bool = True, marker: str = "o", theory_label: str = "theory"):
    """Restoration error (n_d,) against distance from the manifold (n_d,), optionally with a theory curve."""
    ax = axes_or_new(ax)
    d, e = as_numpy(distances), as_numpy(errors)
    line, = ax.plot(d, e, marker=marker, ms=3.5, lw=1.4, color=color, label=label)
    if theory is not None:
        ax.plot(d, as_numpy(theory), ls="--", lw=1.2, color=line.get_color(), alpha=0.8, label=theory_label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("distance from the manifold")
    ax.set_ylabel("restoration error")
    return ax


def plot_curve(x, y, *, ax=None, label: str | None = None, color=None, logx: bool = False, marker: str = "o",
               xlabel: str | None = None, ylabel: str | None = None):
    """A plain line with markers, y (n,) against x (n,) (e.g. AUROC against the variance scale k)."""
    ax = axes_or_new(ax)
    ax.plot(as_numpy(x), as_numpy(y), marker=marker, ms=4, lw=1.4, color=color, label=label)
    if logx:
        ax.set_xscale("log")
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax


def plot_sigma_axis(ax, *, sigma: float = 25.0, label: str = r"noise std $\sigma_k$",
                    ticks=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)):
    """Add a top x-axis labelled with sigma_k = sqrt((sigma^(2k) - 1) / (2 ln sigma)) to an Axes whose x is k.

    Call it after drawing (it copies the current x limits); ticks are the sigma_k values to mark.
    """
    ln = np.log(sigma)
    lo, hi = ax.get_xlim()
    top = ax.twiny()
    top.set_xscale(ax.get_xscale())
    top.set_xlim(lo, hi)
    ks = np.log1p(2 * ln * np.asarray(ticks, dtype=float) ** 2) / (2 * ln)   # sigma_k -> k
    keep = (ks >= min(lo, hi)) & (ks <= max(lo, hi))
    top.set_xticks(ks[keep])
    top.set_xticklabels([f"{t:g}" for t in np.asarray(ticks)[keep]])
    top.minorticks_off()
    top.set_xlabel(label)
    return top


def plot_radar(series: Mapping, *, ax=None, colors=None, linestyles=None, rlim=None, fill_alpha: float = 0.10,
               lw: float = 1.8, markers: str = "o"):
    """Radar chart of named series {name: {category: value}} (SPR Fig. 6); categories from the first series.

    ax must be a polar Axes (a new polar figure when None); rlim = (low, high) of the radius. The legend sits below
    the chart, clear of the category labels (15 of them for MVTec AD).
    """
    if not series:
        raise ValueError("series is empty; expected {name: {category: value}}")
    cats = list(next(iter(series.values())).keys())
    if len(cats) < 3:
        raise ValueError(f"a radar chart needs at least 3 categories, got {cats}")
    if ax is None:
        ax = plt.subplots(subplot_kw={"projection": "polar"})[1]
    if getattr(ax, "name", "") != "polar":
        raise ValueError("plot_radar needs a polar Axes: plt.subplots(subplot_kw={'projection': 'polar'})")
    angles = np.linspace(0, 2 * np.pi, len(cats), endpoint=False)
    closed = np.append(angles, angles[0])
    colors = colors or sns.color_palette("deep", len(series))
    linestyles = linestyles or ["-"] * len(series)
    for (name, values), c, ls in zip(series.items(), colors, linestyles):
        missing = [k for k in cats if k not in values]
        if missing:
            raise ValueError(f"series {name!r} lacks categories {missing}")
        v = np.array([float(values[k]) for k in cats])
        ax.plot(closed, np.append(v, v[0]), color=c, lw=lw, ls=ls, marker=markers, ms=4, label=name)
        if fill_alpha:
            ax.fill(closed, np.append(v, v[0]), color=c, alpha=fill_alpha)
    ax.set_xticks(angles)
    ax.set_xticklabels(cats)
    ax.set_theta_offset(np.pi / 2)
    ax.set_theta_direction(-1)
    if rlim is not None:
        ax.set_ylim(*rlim)
    ax.tick_params(axis="x", pad=6)
    ax.set_rlabel_position(180 / len(cats))          # radius labels between the first two spokes
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=True, framealpha=0.9)
    return ax


def plot_table_heatmap(table, *, ax=None, fmt: str = ".3f", cmap="YlGnBu", vmin: float | None = 0.5,
                       vmax: float | None = 1.0, title: str | None = None, cbar: bool = False, percent: bool = False):
    """A results table (DataFrame: rows categories, columns metrics) as an annotated heatmap (seaborn).

    NaN cells stay blank; percent=True writes the annotations as percentages (values stay fractions).
    """
    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    df = df.astype(float)
    ax = axes_or_new(ax)
    annot = (df * 100).map(lambda v: "" if np.isnan(v) else f"{v:.1f}") if percent else True
    sns.heatmap(df, ax=ax, annot=annot, fmt="" if percent else fmt, cmap=cmap, vmin=vmin, vmax=vmax, cbar=cbar,
                linewidths=0.5, linecolor="white", annot_kws={"fontsize": 8})
    ax.set_ylabel("")
    ax.tick_params(axis="x", rotation=0)
    ax.tick_params(axis="y", rotation=0)
    if title:
        ax.set_title(title)
    return ax


def plot_intervals(table, *, ax=None, labels: Mapping | None = None, colors=None, xlabel: str = "AUROC"):
    """Point estimates with their intervals, one row per category (the order of `table`, 'mean' last and bold)
    and one marker per method, offset within the row: `table` has columns method, category, value, lo, hi (one
    metric of experiments.Bootstrap.table()). labels: method -> legend label (also the order)."""
    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    missing = {"method", "category", "value", "lo", "hi"} - set(df.columns)
    if missing:
        raise ValueError(f"table needs the columns method, category, value, lo, hi; missing {sorted(missing)}")
    ax = axes_or_new(ax)
    methods = list(labels) if labels is not None else list(dict.fromkeys(df["method"]))
    cats = [c for c in dict.fromkeys(df["category"]) if c != "mean"]
    cats += ["mean"] if "mean" in set(df["category"]) else []
    colors = colors or sns.color_palette("colorblind", len(methods))
    step = 0.7 / max(len(methods), 1)
    for i, (method, color) in enumerate(zip(methods, colors)):
        rows = df[df["method"] == method].set_index("category").reindex(cats)
        y = np.arange(len(cats)) + (i - (len(methods) - 1) / 2) * step
        ax.errorbar(rows["value"], y, xerr=[rows["value"] - rows["lo"], rows["hi"] - rows["value"]], fmt="o", ms=4,
                    color=color, capsize=2, lw=1.2, label=(labels or {}).get(method, method))
    ax.set_yticks(np.arange(len(cats)), cats)
    for tick in ax.get_yticklabels():
        tick.set_fontweight("bold" if tick.get_text() == "mean" else "normal")
    ax.set_ylim(len(cats) - 0.5, -0.5)                  # first category on top (idempotent with sharey)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_score_along_paths(times, whole_norms, self_norms, *, ax=None, ylabel=r"$\|s_w(x, t)\|$"):
    """The whole-score magnitude along the whole-score path (red) and the self-score path (blue) against the
    reverse time, t decreasing to the right (Score-DD Fig. 1's 'larger whole-score value' of the defective path)."""
    ax = axes_or_new(ax)
    t = as_numpy(times)
    ax.plot(t, as_numpy(whole_norms), color=COLORS["whole"], lw=1.8, label="whole-score path $x'$")
    ax.plot(t, as_numpy(self_norms), color=COLORS["self"], lw=1.8, label="self-score path $x''$")
    ax.set_xlim(t.max(), t.min())
    ax.set_xlabel("t (reverse time)")
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax
