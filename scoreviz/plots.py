"""One plotting style for the suite, and the figures of the 2-D and manifold experiments.

Every `plot_x(data, *, ax=None, **kw) -> Axes` draws into the given axes (a new figure when ax is None)
and never shows or saves; `save_figure` writes PNG and PDF with deterministic metadata, so figures
regenerated from the same numbers are byte-identical. Plots never compute metrics or anomaly scores;
they receive them. Tensors and arrays are both accepted.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

__all__ = ["COLORS", "use_style", "save_figure", "plot_density", "plot_trajectories", "plot_points",
           "plot_callout", "plot_path_pair", "plot_score_histogram", "plot_histograms", "plot_manifold",
           "plot_samples", "plot_projection", "plot_restoration", "plot_annulus", "plot_error_curve", "plot_curve"]

#: the suite's colours: Score-DD's red whole-score and blue self-score paths, normal/anomalous data
COLORS = {"whole": "#d62728", "self": "#1f4e9c", "normal": "#1f77b4", "anomalous": "#d62728",
          "manifold": "#222222", "perturbed": "#8c8c8c", "restored": "#2ca02c", "theory": "#555555"}


def use_style() -> None:
    """Apply the suite's matplotlib/seaborn style (white background, ticks, readable fonts)."""
    sns.set_theme(context="notebook", style="ticks", font_scale=0.95)
    mpl.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight", "figure.facecolor": "white",
        "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9, "legend.frameon": False,
        "image.cmap": "Oranges", "svg.hashsalt": "scoreviz",
    })


def save_figure(fig: plt.Figure, name: str, out_dir: str | Path = "figures", dpi: int = 150) -> list[Path]:
    """Write fig as out_dir/name.png (dpi) and out_dir/name.pdf, without dates or software versions."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    fig.savefig(png, dpi=dpi, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return [png, pdf]


# ----------------------------------------------------------------------------------------------
def _np(a) -> np.ndarray:
    if torch.is_tensor(a):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=float)


def _ax(ax):
    return plt.subplots()[1] if ax is None else ax


def plot_density(density, *, ax=None, extent=(-10.0, 10.0, -10.0, 10.0), resolution: int = 300, cmap="Oranges",
                 t=None, sde=None, log: bool = False, alpha: float = 1.0, vmax: float | None = None,
                 gamma: float = 0.5):
    """Image of a 2-D density over extent (xmin, xmax, ymin, ymax).

    density: an object with log_prob(x, t, sde) such as toys.GaussianMixture (t=None: the data
    density itself), or a callable log p(x) for points (M, 2). log=True shows log p instead of p.
    gamma < 1 brightens low densities (a power-law colour scale) so that small modes stay visible.
    """
    xmin, xmax, ymin, ymax = extent
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution))
    grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1))
    with torch.no_grad():
        logp = density.log_prob(grid, t, sde) if hasattr(density, "log_prob") else density(grid)
    z = _np(logp).reshape(resolution, resolution)
    img = z if log else np.exp(z)
    ax = _ax(ax)
    norm = None if log or gamma == 1 else mpl.colors.PowerNorm(gamma, vmin=0.0, vmax=vmax)
    ax.imshow(img, origin="lower", extent=extent, cmap=cmap, alpha=alpha, norm=norm,
              vmax=vmax if norm is None else None, aspect="equal", interpolation="nearest")
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    return ax


def plot_trajectories(paths, *, ax=None, color=COLORS["whole"], lw: float = 1.4, alpha: float = 0.9,
                      arrow: bool = True, start_marker: str | None = "o", label: str | None = None,
                      head_from: int = 3, zorder: int = 3):
    """Paths (S + 1, B, 2) (e.g. TrajectoryRecorder.path()) as lines, with an arrowhead at each end.

    The first state gets start_marker; the arrow points along the last head_from steps.
    """
    p = _np(paths)
    if p.ndim == 2:
        p = p[:, None]
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"paths must have shape (S+1, B, 2), got {p.shape}")
    ax = _ax(ax)
    for b in range(p.shape[1]):
        ax.plot(p[:, b, 0], p[:, b, 1], color=color, lw=lw, alpha=alpha, zorder=zorder,
                label=label if b == 0 else None, solid_capstyle="round")
        if start_marker:
            ax.plot(*p[0, b], marker=start_marker, ms=4, color=color, alpha=alpha, zorder=zorder, mec="white", mew=0.5)
        if arrow and p.shape[0] > 1:
            tail = p[max(0, p.shape[0] - 1 - head_from), b]
            ax.annotate("", xy=p[-1, b], xytext=tail, zorder=zorder + 1,
                        arrowprops={"arrowstyle": "-|>", "color": color, "lw": lw, "alpha": alpha,
                                    "mutation_scale": 12, "shrinkA": 0, "shrinkB": 0})
    return ax


def plot_points(points, *, ax=None, labels=None, color="black", marker="*", size: float = 140,
                text_offset=(7, -15), zorder: int = 6):
    """Mark points (B, 2) with a marker and optional text labels."""
    pts = _np(points).reshape(-1, 2)
    ax = _ax(ax)
    ax.scatter(pts[:, 0], pts[:, 1], s=size, marker=marker, color=color, edgecolor="white", linewidth=0.6,
               zorder=zorder)
    for xy, text in zip(pts, labels or []):
        ax.annotate(text, xy=xy, xytext=text_offset, textcoords="offset points", fontsize=9, zorder=zorder,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})
    return ax


def plot_callout(xy, *, ax=None, text: str = "", offset=(-40, 30), color="black"):
    """A labelling arrow pointing at xy from `offset` points away (the arrows of Score-DD Fig. 3)."""
    ax = _ax(ax)
    ax.annotate(text, xy=tuple(_np(xy).ravel()), xytext=offset, textcoords="offset points", fontsize=9,
                color=color, zorder=7, ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8} if text else None,
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.2, "mutation_scale": 12, "shrinkB": 7,
                            "shrinkA": 2})
    return ax


def plot_path_pair(whole_paths, self_paths, *, ax=None, density=None, points=None, point_labels=None,
                   callouts=(), callout_text: str = "", extent: float = 10.0, title: str | None = None,
                   legend: bool = True, inset: float | None = None, inset_bounds=(0.57, 0.02, 0.41, 0.41)):
    """One panel of Score-DD Fig. 3: whole-score paths (red) and self-score paths (blue) over the data density.

    whole_paths, self_paths: (S + 1, B, 2); points: the x(0) (P, 2) marked with stars; callouts: points
    (C, 2) labelled with an arrow. The square view is +-extent, widened to contain every path. With
    inset=h and a widened view, an inset (at inset_bounds, axes fractions) repeats the panel on +-h.
    """
    reach = max(float(np.abs(_np(whole_paths)).max()), float(np.abs(_np(self_paths)).max())) * 1.06
    lim = max(float(extent), reach)
    ax = _ax(ax)
    views = [(ax, lim)]
    if inset is not None and lim > inset:
        axins = ax.inset_axes(list(inset_bounds))
        views.append((axins, float(inset)))
    for i, (a, h) in enumerate(views):
        if density is not None:
            plot_density(density, ax=a, extent=(-h, h, -h, h))
        plot_trajectories(whole_paths, ax=a, color=COLORS["whole"], label=r"whole score $\to x'(0)$",
                          start_marker="o" if i == 0 else None)
        plot_trajectories(self_paths, ax=a, color=COLORS["self"], label=r"self score $\to x''(0)$",
                          start_marker="o" if i == 0 else None)
        if points is not None:
            plot_points(points, ax=a, labels=point_labels if i == 0 else None, size=140 if i == 0 else 90)
        a.set_xlim(-h, h)
        a.set_ylim(-h, h)
        a.set_aspect("equal")
    for xy in np.unique(_np(callouts).reshape(-1, 2), axis=0):
        plot_callout(xy, ax=ax, text=callout_text, offset=(36 * np.sign(xy[0] or 1), 40 * np.sign(xy[1] or 1)))
    if len(views) > 1:
        axins = views[1][0]
        axins.set_xticks([])
        axins.set_yticks([])
        ax.indicate_inset_zoom(axins, edgecolor="0.3")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="lower right", fontsize=8, frameon=True, framealpha=0.85)
    return ax


def plot_histograms(values: Mapping, *, ax=None, bins: int = 40, colors=None, log_scale: bool = False,
                    xlabel: str | None = None, legend_loc: str = "best"):
    """Overlaid step histograms of named samples {name: values (n,)} on common bins (log-spaced if log_scale).

    Bar heights are the fraction of each sample per bin, so samples of different sizes compare directly.
    """
    ax = _ax(ax)
    data = {k: _np(v).ravel() for k, v in values.items()}
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
    s, y = _np(scores).ravel(), _np(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same length, got {s.shape} and {y.shape}")
    values = {f"{names[0]} (n={int((~y).sum())})": s[~y], f"{names[1]} (n={int(y.sum())})": s[y]}
    ax = plot_histograms(values, ax=ax, bins=bins, log_scale=log_scale, xlabel=xlabel,
                         colors=[COLORS["normal"], COLORS["anomalous"]])
    if title:
        ax.set_title(title)
    return ax


def plot_manifold(points, *, ax=None, color=COLORS["manifold"], lw: float = 2.0, label: str | None = "$M$",
                  zorder: int = 2):
    """A 1-D manifold in the plane given as ordered points (K, 2), drawn as a curve."""
    p = _np(points)
    ax = _ax(ax)
    ax.plot(p[:, 0], p[:, 1], color=color, lw=lw, label=label, zorder=zorder, solid_capstyle="round")
    ax.set_aspect("equal")
    return ax


def plot_samples(points, *, ax=None, color=COLORS["perturbed"], s: float = 4, alpha: float = 0.5,
                 label: str | None = None, zorder: int = 1):
    """Scatter of points (B, 2)."""
    p = _np(points)
    ax = _ax(ax)
    ax.scatter(p[:, 0], p[:, 1], s=s, color=color, alpha=alpha, label=label, linewidths=0, zorder=zorder)
    return ax


def plot_projection(x_tilde, restored, projected, *, ax=None, color=COLORS["restored"]):
    """SPR Sec. 4.1: arrows from perturbed points x~ (B, 2) to their restorations E[x|x~] (B, 2),
    with the orthogonal projections P_M(x~) (B, 2) as hollow circles (they should coincide)."""
    xt, xr, xp = _np(x_tilde), _np(restored), _np(projected)
    ax = _ax(ax)
    for a, b in zip(xt, xr):
        ax.annotate("", xy=b, xytext=a, zorder=4,
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.0, "mutation_scale": 8,
                                "shrinkA": 0, "shrinkB": 0})
    ax.scatter(xt[:, 0], xt[:, 1], s=10, color=COLORS["perturbed"], zorder=3, label=r"perturbed $\tilde x$")
    ax.scatter(xp[:, 0], xp[:, 1], s=42, facecolors="none", edgecolors="black", linewidths=0.8, zorder=5,
               label=r"$P_M(\tilde x)$")
    ax.scatter(xr[:, 0], xr[:, 1], s=8, color=color, zorder=6, label=r"$\tilde x + \sigma^2 \nabla\log p(\tilde x)$")
    ax.set_aspect("equal")
    return ax


def plot_restoration(x, x_tilde, x_hat, *, ax=None, color=COLORS["restored"], point_label: str = "$x$",
                     point_color="black"):
    """SPR Fig. 3: a point x (D=2), its perturbations x~ (B, 2) and the one-step restorations x^ (B, 2).

    Dashed grey segments go from x to each x~, arrows from each x~ to its restoration x^.
    """
    x0, xt, xh = _np(x).reshape(2), _np(x_tilde), _np(x_hat)
    ax = _ax(ax)
    for a, b in zip(xt, xh):
        ax.plot([x0[0], a[0]], [x0[1], a[1]], ls=":", lw=0.8, color=COLORS["perturbed"], zorder=2)
        ax.annotate("", xy=b, xytext=a, zorder=4,
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.0, "mutation_scale": 8,
                                "shrinkA": 0, "shrinkB": 0, "alpha": 0.8})
    ax.scatter(xt[:, 0], xt[:, 1], s=12, color=COLORS["perturbed"], zorder=3, label=r"perturbed $\tilde x$")
    ax.scatter(xh[:, 0], xh[:, 1], s=12, color=color, zorder=5, label=r"restored $\hat x$")
    ax.scatter([x0[0]], [x0[1]], s=120, marker="*", color=point_color, edgecolor="white", zorder=6,
               label=point_label)
    ax.set_aspect("equal")
    return ax


def plot_annulus(norms: Mapping, *, ax=None, bins: int = 80, palette="viridis"):
    """Histograms of ||eps|| / sqrt(d) for eps ~ N(0, I_d), one per dimension d (the Gaussian annulus).

    norms maps d -> the norms ||eps|| (n,); they concentrate at 1 after dividing by sqrt(d).
    """
    values = {f"d = {d}": _np(r) / np.sqrt(d) for d, r in sorted(norms.items())}
    ax = plot_histograms(values, ax=ax, bins=bins, colors=sns.color_palette(palette, len(values)),
                         xlabel=r"$\|\epsilon\| / \sqrt{d}$")
    ax.axvline(1.0, color=COLORS["theory"], ls="--", lw=1)
    return ax


def plot_error_curve(distances, errors, *, ax=None, theory=None, label: str | None = None, color=None,
                     logy: bool = True, marker: str = "o", theory_label: str = "theory"):
    """Restoration error (n_d,) against distance from the manifold (n_d,), optionally with a theory curve."""
    ax = _ax(ax)
    d, e = _np(distances), _np(errors)
    line, = ax.plot(d, e, marker=marker, ms=3.5, lw=1.4, color=color, label=label)
    if theory is not None:
        ax.plot(d, _np(theory), ls="--", lw=1.2, color=line.get_color(), alpha=0.8, label=theory_label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("distance from the manifold")
    ax.set_ylabel("restoration error")
    return ax


def plot_curve(x, y, *, ax=None, label: str | None = None, color=None, logx: bool = False, marker: str = "o",
               xlabel: str | None = None, ylabel: str | None = None):
    """A plain line with markers, y (n,) against x (n,) (e.g. AUROC against the variance scale k)."""
    ax = _ax(ax)
    ax.plot(_np(x), _np(y), marker=marker, ms=4, lw=1.4, color=color, label=label)
    if logx:
        ax.set_xscale("log")
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax


# ---------------------------------------------------------------------------------------------------------- SPR images
__all__ += ["plot_radar", "plot_anomaly_grid", "plot_image_grid", "plot_sigma_axis"]


def plot_radar(series: Mapping, *, ax=None, colors=None, linestyles=None, rlim=None, fill_alpha: float = 0.10,
               lw: float = 1.8, markers: str = "o", legend_loc: str = "lower left"):
    """Radar chart of named series {name: {category: value}} (SPR Fig. 6); categories from the first series.

    ax must be a polar Axes (a new polar figure when None); rlim = (low, high) of the radius.
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
    ax.legend(loc=legend_loc, bbox_to_anchor=(-0.15, -0.15), frameon=True, framealpha=0.9)
    return ax


def _show_image(ax, img, vmin=-1.0, vmax=1.0):
    a = _np(img)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))
    a = np.clip((a - vmin) / (vmax - vmin), 0, 1)
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_anomaly_grid(images, maps, masks, *, axes=None, row_labels=None, cmap="inferno", vmax=None,
                      titles=("input", "anomaly map", "ground truth")):
    """SPR Fig. 4: one row per image with input (B, C, H, W) in [-1, 1], map (B, S, S) and mask (B, S, S).

    Maps are drawn from 0 to vmax: a number (shared scale), None (the largest value shown, shared) or a
    sequence of B values (e.g. a per-category scale). axes: a (B, 3) array of Axes (a new figure when None).
    """
    imgs, m, gt = _np(images), _np(maps), _np(masks)
    if not (len(imgs) == len(m) == len(gt)):
        raise ValueError(f"images, maps and masks need the same length, got {len(imgs)}, {len(m)}, {len(gt)}")
    if axes is None:
        axes = plt.subplots(len(imgs), 3, figsize=(6.3, 2.1 * len(imgs)), squeeze=False)[1]
    axes = np.asarray(axes).reshape(len(imgs), 3)
    tops = np.broadcast_to(np.asarray(float(m.max()) if vmax is None else vmax, dtype=float), (len(imgs),))
    for i in range(len(imgs)):
        _show_image(axes[i, 0], imgs[i])
        axes[i, 1].imshow(m[i], cmap=cmap, vmin=0, vmax=tops[i], interpolation="bilinear")
        axes[i, 2].imshow(gt[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for ax in axes[i, 1:]:
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=9)
    for ax, t in zip(axes[0], titles):
        ax.set_title(t, fontsize=10)
    return axes


def plot_image_grid(images, *, axes=None, row_labels=None, col_labels=None, vmin=-1.0, vmax=1.0, cmap=None):
    """A grid of images: images is a nested list [row][col] of (C, H, W) images in [vmin, vmax] or (H, W) maps.

    2-D maps are drawn with cmap (default 'inferno', own colour scale per map unless vmin/vmax given for
    images only). axes: a (rows, cols) array of Axes (a new figure when None). Returns the axes.
    """
    rows, cols = len(images), max(len(r) for r in images)
    if axes is None:
        axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows), squeeze=False)[1]
    axes = np.asarray(axes).reshape(rows, cols)
    for i, row in enumerate(images):
        for j in range(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(row) or row[j] is None:
                ax.axis("off")
                continue
            a = _np(row[j])
            if a.ndim == 2:
                ax.imshow(a, cmap=cmap or "inferno", interpolation="nearest")
            else:
                _show_image(ax, a, vmin, vmax)
    if row_labels is not None:
        for ax, t in zip(axes[:, 0], row_labels):
            ax.set_ylabel(t, fontsize=9)
    if col_labels is not None:
        for ax, t in zip(axes[0], col_labels):
            ax.set_title(t, fontsize=9)
    return axes


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


# ---------------------------------------------------------------------------------------------------------- DDAD tables
__all__ += ["plot_table_heatmap"]


def plot_table_heatmap(table, *, ax=None, fmt: str = ".3f", cmap="YlGnBu", vmin: float | None = 0.5,
                       vmax: float | None = 1.0, title: str | None = None, cbar: bool = False, percent: bool = False):
    """A results table (DataFrame: rows categories, columns metrics) as an annotated heatmap (seaborn).

    NaN cells stay blank; percent=True writes the annotations as percentages (values stay fractions).
    """
    import pandas as pd

    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    df = df.astype(float)
    ax = _ax(ax)
    annot = (df * 100).map(lambda v: "" if np.isnan(v) else f"{v:.1f}") if percent else True
    sns.heatmap(df, ax=ax, annot=annot, fmt="" if percent else fmt, cmap=cmap, vmin=vmin, vmax=vmax, cbar=cbar,
                linewidths=0.5, linecolor="white", annot_kws={"fontsize": 8})
    ax.set_ylabel("")
    ax.tick_params(axis="x", rotation=0)
    ax.tick_params(axis="y", rotation=0)
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------------------------------------------------- Score-DD images
__all__ += ["plot_feature_distance_grid", "plot_path_frames", "plot_score_along_paths"]


def plot_feature_distance_grid(image, mask, maps, *, axes=None, row_labels=None, col_labels=None, cmap="inferno",
                               title: str | None = None):
    """Score-DD Fig. 4: an input image (C, H, W) and its mask (H, W) in the first column, then a grid of feature
    distance maps (rows, cols, H, W) (e.g. layers x start times), each map on its own colour scale from 0.

    axes: a (rows, cols + 1) array of Axes (a new figure when None). Returns the axes.
    """
    m = _np(maps)
    rows, cols = m.shape[:2]
    if axes is None:
        axes = plt.subplots(rows, cols + 1, figsize=(1.7 * (cols + 1), 1.7 * rows), squeeze=False)[1]
    axes = np.asarray(axes).reshape(rows, cols + 1)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    _show_image(axes[0, 0], image)
    axes[0, 0].set_title("input", fontsize=9)
    if rows > 1:
        axes[1, 0].imshow(_np(mask), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[1, 0].set_title("ground truth", fontsize=9)
    for ax in axes[2:, 0]:
        ax.axis("off")
    for i in range(rows):
        for j in range(cols):
            axes[i, j + 1].imshow(m[i, j], cmap=cmap, vmin=0, interpolation="nearest")
        if row_labels is not None:
            axes[i, 1].set_ylabel(row_labels[i], fontsize=9)
    if col_labels is not None:
        for ax, t in zip(axes[0, 1:], col_labels):
            ax.set_title(t, fontsize=9)
    if title:
        axes[0, 0].figure.suptitle(title, y=1.0)
    return axes


def plot_path_frames(whole, self_, *, axes=None, times=None, vmin=-1.0, vmax=1.0,
                     labels=("whole score $x'$", "self score $x''$")):
    """Score-DD Fig. 1: the states of the whole-score path (F, C, H, W) and of the self-score path (F, C, H, W)
    as two rows of images, columns labelled by times (F,). axes: a (2, F) array of Axes."""
    w, s = _np(whole), _np(self_)
    if w.shape != s.shape:
        raise ValueError(f"whole and self paths need the same shape, got {w.shape} and {s.shape}")
    F = w.shape[0]
    if axes is None:
        axes = plt.subplots(2, F, figsize=(1.7 * F, 3.6), squeeze=False)[1]
    axes = np.asarray(axes).reshape(2, F)
    for j in range(F):
        _show_image(axes[0, j], w[j], vmin, vmax)
        _show_image(axes[1, j], s[j], vmin, vmax)
        if times is not None:
            axes[0, j].set_title(f"t = {float(times[j]):.3f}", fontsize=9)
    axes[0, 0].set_ylabel(labels[0], fontsize=9, color=COLORS["whole"])
    axes[1, 0].set_ylabel(labels[1], fontsize=9, color=COLORS["self"])
    return axes


def plot_score_along_paths(times, whole_norms, self_norms, *, ax=None, ylabel=r"$\|s_w(x, t)\|$"):
    """The whole-score magnitude along the whole-score path (red) and the self-score path (blue) against the
    reverse time, t decreasing to the right (Score-DD Fig. 1's 'larger whole-score value' of the defective path)."""
    ax = _ax(ax)
    t = _np(times)
    ax.plot(t, _np(whole_norms), color=COLORS["whole"], lw=1.8, label="whole-score path $x'$")
    ax.plot(t, _np(self_norms), color=COLORS["self"], lw=1.8, label="self-score path $x''$")
    ax.set_xlim(t.max(), t.min())
    ax.set_xlabel("t (reverse time)")
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax
