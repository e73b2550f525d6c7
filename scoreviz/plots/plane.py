"""Figures in the 2-D plane: densities, sample paths, marked points, manifolds and one-step restorations.

The views of the 2-D and manifold experiments: Score-DD Fig. 3 (whole- and self-score paths over a mixture
density, `plot_path_pair`) and SPR Sec. 4.1 / Fig. 3 (perturbations restored towards a manifold).
"""
from __future__ import annotations

import matplotlib as mpl
import numpy as np
import torch

from .style import COLORS, as_numpy, axes_or_new

__all__ = ["plot_density", "plot_trajectories", "plot_points", "plot_callout", "plot_path_pair", "plot_manifold",
           "plot_samples", "plot_projection", "plot_restoration"]


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
    z = as_numpy(logp).reshape(resolution, resolution)
    img = z if log else np.exp(z)
    ax = axes_or_new(ax)
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
    p = as_numpy(paths)
    if p.ndim == 2:
        p = p[:, None]
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"paths must have shape (S+1, B, 2), got {p.shape}")
    ax = axes_or_new(ax)
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
    pts = as_numpy(points).reshape(-1, 2)
    ax = axes_or_new(ax)
    ax.scatter(pts[:, 0], pts[:, 1], s=size, marker=marker, color=color, edgecolor="white", linewidth=0.6,
               zorder=zorder)
    for xy, text in zip(pts, labels or []):
        ax.annotate(text, xy=xy, xytext=text_offset, textcoords="offset points", fontsize=9, zorder=zorder,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})
    return ax


def plot_callout(xy, *, ax=None, text: str = "", offset=(-40, 30), color="black"):
    """A labelling arrow pointing at xy from `offset` points away (the arrows of Score-DD Fig. 3)."""
    ax = axes_or_new(ax)
    ax.annotate(text, xy=tuple(as_numpy(xy).ravel()), xytext=offset, textcoords="offset points", fontsize=9,
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
    reach = max(float(np.abs(as_numpy(whole_paths)).max()), float(np.abs(as_numpy(self_paths)).max())) * 1.06
    lim = max(float(extent), reach)
    ax = axes_or_new(ax)
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
    for xy in np.unique(as_numpy(callouts).reshape(-1, 2), axis=0):
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


def plot_manifold(points, *, ax=None, color=COLORS["manifold"], lw: float = 2.0, label: str | None = "$M$",
                  zorder: int = 2):
    """A 1-D manifold in the plane given as ordered points (K, 2), drawn as a curve."""
    p = as_numpy(points)
    ax = axes_or_new(ax)
    ax.plot(p[:, 0], p[:, 1], color=color, lw=lw, label=label, zorder=zorder, solid_capstyle="round")
    ax.set_aspect("equal")
    return ax


def plot_samples(points, *, ax=None, color=COLORS["perturbed"], s: float = 4, alpha: float = 0.5,
                 label: str | None = None, zorder: int = 1):
    """Scatter of points (B, 2)."""
    p = as_numpy(points)
    ax = axes_or_new(ax)
    ax.scatter(p[:, 0], p[:, 1], s=s, color=color, alpha=alpha, label=label, linewidths=0, zorder=zorder)
    return ax


def plot_projection(x_tilde, restored, projected, *, ax=None, color=COLORS["restored"]):
    """SPR Sec. 4.1: arrows from perturbed points x~ (B, 2) to their restorations E[x|x~] (B, 2),
    with the orthogonal projections P_M(x~) (B, 2) as hollow circles (they should coincide)."""
    xt, xr, xp = as_numpy(x_tilde), as_numpy(restored), as_numpy(projected)
    ax = axes_or_new(ax)
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
    x0, xt, xh = as_numpy(x).reshape(2), as_numpy(x_tilde), as_numpy(x_hat)
    ax = axes_or_new(ax)
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
