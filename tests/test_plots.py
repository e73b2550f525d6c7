import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from scoreviz import plots  # noqa: E402
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
