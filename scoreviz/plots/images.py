"""Image grids: inputs, anomaly maps and masks (SPR Fig. 4), feature distance maps (Score-DD Fig. 4) and the
states of Score-DD's two reverse paths (Fig. 1).

Images (C, H, W) are drawn from [vmin, vmax] (default [-1, 1]) in gray or RGB; maps (H, W) with a colour map.
Each function fills a given array of Axes (a new figure when axes is None) and returns it.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .style import COLORS, as_numpy

__all__ = ["plot_anomaly_grid", "plot_image_grid", "plot_feature_distance_grid", "plot_path_frames"]


def _show_image(ax, img, vmin=-1.0, vmax=1.0):
    a = as_numpy(img)
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
    imgs, m, gt = as_numpy(images), as_numpy(maps), as_numpy(masks)
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
            a = as_numpy(row[j])
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


def plot_feature_distance_grid(image, mask, maps, *, axes=None, row_labels=None, col_labels=None, cmap="inferno",
                               title: str | None = None):
    """Score-DD Fig. 4: an input image (C, H, W) and its mask (H, W) in the first column, then a grid of feature
    distance maps (rows, cols, H, W) (e.g. layers x start times), each map on its own colour scale from 0.

    axes: a (rows, cols + 1) array of Axes (a new figure when None). Returns the axes.
    """
    m = as_numpy(maps)
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
        axes[1, 0].imshow(as_numpy(mask), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
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
    w, s = as_numpy(whole), as_numpy(self_)
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
