"""Tests for scoreviz.plots (style, plane, charts, images): every plot draws into the given axes and returns it,
never shows or saves; save_figure writes byte-identical PNG and PDF."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from scoreviz import paper, plots  # noqa: E402
from scoreviz.sde import SPRSDE  # noqa: E402
from scoreviz.toys import curve_manifold, scoredd_mixture  # noqa: E402


@pytest.fixture(autouse=True)
def _no_show_or_save(monkeypatch):
    """Plot functions must neither show nor save; close every figure afterwards."""
    def forbidden(*args, **kwargs):
        raise AssertionError("plot functions must not call show() or savefig()")
    monkeypatch.setattr(plt, "show", forbidden)
    monkeypatch.setattr(Figure, "savefig", forbidden)
    plots.use_style()
    yield
    plt.close("all")


def _paths(S=6, B=3):
    return torch.cumsum(torch.randn(S + 1, B, 2, generator=torch.Generator().manual_seed(0)), 0)


CASES = {
    "density_mixture": lambda ax: plots.plot_density(scoredd_mixture(), ax=ax, resolution=40),
    "density_callable": lambda ax: plots.plot_density(lambda x: -x.pow(2).sum(1), ax=ax, resolution=30, log=True),
    "density_noised": lambda ax: plots.plot_density(curve_manifold(20), ax=ax, t=0.05, sde=SPRSDE(), resolution=30),
    "trajectories": lambda ax: plots.plot_trajectories(_paths(), ax=ax, label="whole"),
    "points": lambda ax: plots.plot_points(torch.zeros(2, 2), ax=ax, labels=["a", "b"]),
    "callout": lambda ax: plots.plot_callout(torch.tensor([1.0, 2.0]), ax=ax, text="here"),
    "path_pair": lambda ax: plots.plot_path_pair(_paths(), _paths() * 0.5, ax=ax, density=scoredd_mixture(),
                                                 points=torch.zeros(3, 2), point_labels=["x", "y", "z"],
                                                 callouts=torch.zeros(1, 2), title="t"),
    "score_histogram": lambda ax: plots.plot_score_histogram(np.r_[np.ones(5), 3 * np.ones(5)] + np.arange(10) / 10,
                                                             np.r_[np.zeros(5), np.ones(5)], ax=ax, log_scale=True),
    "histograms": lambda ax: plots.plot_histograms({"a": np.arange(10.0), "b": np.arange(5.0) + 2}, ax=ax),
    "manifold": lambda ax: plots.plot_manifold(curve_manifold(50).means, ax=ax),
    "samples": lambda ax: plots.plot_samples(torch.randn(20, 2), ax=ax),
    "projection": lambda ax: plots.plot_projection(torch.randn(5, 2), torch.zeros(5, 2), torch.zeros(5, 2), ax=ax),
    "restoration": lambda ax: plots.plot_restoration(torch.zeros(1, 2), torch.randn(4, 2), torch.zeros(4, 2), ax=ax),
    "annulus": lambda ax: plots.plot_annulus({2: torch.rand(50) * 2, 16: torch.rand(50) + 3.5}, ax=ax),
    "error_curve": lambda ax: plots.plot_error_curve(np.arange(5.0), 1 + np.arange(5.0) ** 2, ax=ax,
                                                     theory=1 + np.arange(5.0) ** 2, label="line"),
    "curve": lambda ax: plots.plot_curve([1e-3, 1e-2, 1e-1], [0.9, 0.95, 0.6], ax=ax, logx=True, xlabel="k"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_plot_draws_into_given_axes_and_returns_it(name):
    fig, ax = plt.subplots()
    out = CASES[name](ax)
    assert out is ax and isinstance(out, Axes)
    assert ax.has_data() or ax.texts or ax.patches or ax.images


def test_plot_without_axes_makes_one():
    assert isinstance(plots.plot_trajectories(_paths()), Axes)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="paths must have shape"):
        plots.plot_trajectories(torch.zeros(4, 2, 3))
    with pytest.raises(ValueError, match="same length"):
        plots.plot_score_histogram(np.zeros(3), np.zeros(4))


def test_save_figure_writes_png_and_pdf_deterministically(tmp_path, monkeypatch):
    monkeypatch.undo()  # saving is the point here
    plots.use_style()
    written = []
    for sub in ("a", "b"):
        fig, ax = plt.subplots(figsize=(3, 2))
        plots.plot_density(scoredd_mixture(), ax=ax, resolution=30)
        plots.plot_trajectories(_paths(), ax=ax)
        written.append(plots.save_figure(fig, "demo", tmp_path / sub))
        plt.close(fig)
    for paths in written:
        assert [p.suffix for p in paths] == [".png", ".pdf"]
        assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)
    assert written[0][0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[0][1].read_bytes()[:5] == b"%PDF-"
    for a, b in zip(*written):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two identical saves"
    assert b"CreationDate" not in written[0][1].read_bytes()


# ------------------------------------------------------------------------------------------------ charts and image grids
def _squares(B=2, size=12):
    """Images (B, 1, S, S) = 0 with a bright square on the second half, and masks (B, S, S) marking it."""
    x, masks = torch.zeros(B, 1, size, size), torch.zeros(B, size, size, dtype=torch.bool)
    for i in range(B // 2, B):
        masks[i, 3:7, 4:8] = True
        x[i, :, 3:7, 4:8] = 0.8
    return x, masks


def test_radar_needs_polar_axes_and_every_category():
    _, ax = plt.subplots(subplot_kw={"projection": "polar"})
    out = plots.plot_radar({"a": {"x": 0.9, "y": 0.8, "z": 0.7}, "b": {"x": 0.6, "y": 0.9, "z": 0.8}}, ax=ax,
                           linestyles=["-", "--"], rlim=(0.5, 1.0))
    assert out is ax and len(ax.lines) == 2 and ax.get_ylim() == (0.5, 1.0)
    with pytest.raises(ValueError, match="polar"):
        plots.plot_radar({"a": {"x": 1, "y": 1, "z": 1}}, ax=plt.subplots()[1])
    with pytest.raises(ValueError, match="lacks"):
        plots.plot_radar({"a": {"x": 1, "y": 1, "z": 1}, "b": {"x": 1}}, ax=ax)



def test_radar_legend_stays_clear_of_fifteen_category_labels():
    """#17's look check: with MVTec AD's 15 categories the legend covered two labels; it now sits below them."""
    cats = [f"category_{i}" for i in range(15)]
    fig, ax = plt.subplots(figsize=(6.4, 6.4), subplot_kw={"projection": "polar"})
    plots.plot_radar({f"a long series name {j}": {c: 0.5 + 0.03 * i for i, c in enumerate(cats)} for j in range(4)},
                     ax=ax)
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    labels = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
    assert not any(legend.overlaps(b) for b in labels)
    assert legend.y1 <= min(b.y0 for b in labels) + 1e-6
    plt.close(fig)

def test_anomaly_and_image_grids():
    x, masks = _squares(2, 12)
    axes = plots.plot_anomaly_grid(x, torch.rand(2, 12, 12), masks, vmax=[1.0, 2.0])
    assert axes.shape == (2, 3) and axes[1, 1].images[0].get_clim() == (0.0, 2.0)
    grid = plots.plot_image_grid([[x[0], torch.rand(12, 12)], [x[1]]], row_labels=["a", "b"], col_labels=["u", "v"])
    assert grid.shape == (2, 2) and not grid[1, 1].axison


def test_sigma_axis_ticks_sit_at_the_k_of_each_sigma():
    _, ax = plt.subplots()
    ax.plot([1e-4, 1.0], [0, 1])
    ax.set_xscale("log")
    top = plots.plot_sigma_axis(ax, ticks=(0.01, 0.1, 1.0))
    ticks = dict(zip([t.get_text() for t in top.get_xticklabels()], top.get_xticks()))
    for label, sigma in (("0.01", 0.01), ("0.1", 0.1), ("1", 1.0)):   # tick at the k whose sigma_k is the label
        assert SPRSDE(25.0).marginal_std(torch.tensor([ticks[label]], dtype=torch.float64)).item() == pytest.approx(sigma)


def test_table_heatmap_annotates_and_leaves_nan_blank():
    _, ax = plt.subplots()
    table = paper.table("ddad", "mvtec")
    table.loc["carpet", "pro"] = float("nan")
    out = plots.plot_table_heatmap(table, ax=ax, percent=True, title="README")
    texts = [t.get_text() for t in ax.texts]
    assert out is ax and "99.3" in texts and ax.get_title() == "README"
    assert len(texts) == table.size - 1                    # the NaN cell stays blank
    assert plots.plot_table_heatmap(pd.DataFrame({"a": [0.5, 0.75]}, index=["x", "y"])).texts[1].get_text() == "0.750"


def test_scoredd_figures():
    x, masks = _squares(2, 12)
    axes = plots.plot_feature_distance_grid(x[1], masks[1], torch.rand(3, 2, 12, 12), row_labels=["a", "b", "c"],
                                            col_labels=["t1", "t2"])
    assert axes.shape == (3, 3) and not axes[2, 0].axison and len(axes[0, 1].images) == 1
    frames = torch.rand(4, 1, 12, 12) * 2 - 1
    axes = plots.plot_path_frames(frames, frames.flip(0), times=torch.linspace(0.2, 0.1, 4))
    assert axes.shape == (2, 4) and axes[0, 0].get_title() == "t = 0.200"
    with pytest.raises(ValueError, match="same shape"):
        plots.plot_path_frames(frames, frames[:2])
    ax = plots.plot_score_along_paths(torch.linspace(0.2, 0.1, 5), torch.arange(5.0), torch.ones(5))
    assert len(ax.lines) == 2 and ax.get_xlim() == pytest.approx((0.2, 0.1))   # reverse time runs to the right


def test_intervals_one_marker_per_method_and_category_mean_last():
    rows = [("mean", 0.85), ("brick", 0.95), ("face", 0.75)]
    table = pd.DataFrame([{"method": m, "category": c, "value": v + off, "lo": v + off - 0.05, "hi": v + off + 0.02}
                          for m, off in (("spr", 0.0), ("zscore", -0.1)) for c, v in rows])
    ax = plots.plot_intervals(table, labels={"zscore": "z-score", "spr": "SPR"})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["brick", "face", "mean"]
    bars = ax.containers
    assert len(bars) == 2 and [b.get_label() for b in bars] == ["z-score", "SPR"]
    x, _ = bars[1].lines[0].get_data()                       # SPR's points, in row order
    assert np.allclose(np.asarray(x, dtype=float), [0.95, 0.75, 0.85])
    assert ax.get_ylim() == (2.5, -0.5)                      # brick on top, mean at the bottom
    with pytest.raises(ValueError, match="missing"):
        plots.plot_intervals(table.drop(columns="lo"))
