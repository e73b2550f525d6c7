"""The suite's plotting style and the conventions every plot function shares.

`use_style` applies one matplotlib/seaborn style, `COLORS` names the suite's colours, and `save_figure` writes
PNG and PDF with deterministic metadata, so figures regenerated from the same numbers are byte-identical.
`as_numpy` and `axes_or_new` implement the two conventions of every `plot_x(data, *, ax=None, **kw) -> Axes`:
tensors and arrays are both accepted, and a new figure is made when ax is None.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

__all__ = ["COLORS", "use_style", "save_figure", "as_numpy", "axes_or_new"]

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


def as_numpy(a) -> np.ndarray:
    """A tensor (detached, on the CPU) or array-like as a float64 numpy array."""
    if torch.is_tensor(a):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=float)


def axes_or_new(ax):
    """The given Axes, or the Axes of a new figure when ax is None."""
    return plt.subplots()[1] if ax is None else ax
