"""One plotting style for the suite, and the figures of the experiments.

Every `plot_x(data, *, ax=None, **kw) -> Axes` draws into the given axes (a new figure when ax is None)
and never shows or saves; `save_figure` writes PNG and PDF with deterministic metadata, so figures
regenerated from the same numbers are byte-identical. Plots never compute metrics or anomaly scores;
they receive them. Tensors and arrays are both accepted.

Submodules, one kind of figure each (every name is also available here, as `plots.plot_radar`):
`style` (COLORS, use_style, save_figure), `plane` (2-D densities, paths, points, manifolds,
restorations), `charts` (histograms, curves, radar charts, table heatmaps, intervals), `images` (image and
anomaly-map grids, Score-DD's path frames).
"""
from .charts import (
    plot_annulus,
    plot_curve,
    plot_error_curve,
    plot_histograms,
    plot_intervals,
    plot_radar,
    plot_score_along_paths,
    plot_score_histogram,
    plot_sigma_axis,
    plot_table_heatmap,
)
from .images import (
    plot_anomaly_grid,
    plot_feature_distance_grid,
    plot_image_grid,
    plot_path_frames,
)
from .plane import (
    plot_callout,
    plot_density,
    plot_manifold,
    plot_path_pair,
    plot_points,
    plot_projection,
    plot_restoration,
    plot_samples,
    plot_trajectories,
)
from .style import COLORS, save_figure, use_style

__all__ = [
    "COLORS", "use_style", "save_figure",
    "plot_density", "plot_trajectories", "plot_points", "plot_callout", "plot_path_pair", "plot_manifold",
    "plot_samples", "plot_projection", "plot_restoration",
    "plot_histograms", "plot_score_histogram", "plot_annulus", "plot_error_curve", "plot_curve", "plot_sigma_axis",
    "plot_radar", "plot_table_heatmap", "plot_score_along_paths", "plot_intervals",
    "plot_anomaly_grid", "plot_image_grid", "plot_feature_distance_grid", "plot_path_frames",
]
