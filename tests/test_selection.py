import numpy as np
import pandas as pd
import pytest
import torch

from scoreviz import selection
from scoreviz.sde import SPRSDE, bcast

SDE = SPRSDE(25.0)


def _std(k):
    return SDE.marginal_std(torch.tensor([k], dtype=torch.float64)).item()


def gaussian_score(x, t):
    """Exact score of N(0, I) data perturbed by the SPR SDE: -x / (1 + s(t)^2)."""
    return -x / bcast(1 + SDE.marginal_std(t) ** 2, x)


# ---------------------------------------------------------------------------------------------------------
# SPR: the label-free variance scale k

def test_k_criterion_restoration_error_matches_the_gaussian_closed_form():
    """Gaussian data N(0, I) with its exact score: r(k) = E (eps - s x)^2 / (1 + s^2)^2 = 1 / (1 + s^2)."""
    x = torch.randn(64, 2, 8, 8, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    ks = [1e-3, 0.1, 0.5]
    table = selection.k_criterion(gaussian_score, x, SDE, ks, n=4, kernel=3, out_size=8)
    s2 = np.array([_std(k) ** 2 for k in ks])
    assert list(table.k) == ks and np.allclose(table.sigma_k, np.sqrt(s2))
    assert np.allclose(table.r, 1 / (1 + s2), rtol=0.05)
    assert (table.spread > 0).all() and np.isfinite(table.criterion).all()


def test_k_criterion_of_a_zero_score_restores_nothing():
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    table = selection.k_criterion(lambda x, t: torch.zeros_like(x), x, SDE, [1e-3, 0.1], n=2, kernel=3, out_size=8)
    assert np.allclose(table.r, 1.0, atol=0.05)       # the whole perturbation is left: E ||eps||^2 / C = 1
    assert (table.c < 0.05).all()


def test_k_criterion_is_seeded():
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    a, b, c = (selection.k_criterion(gaussian_score, x, SDE, [0.01], n=2, kernel=3, out_size=8, seed=s)
               for s in (3, 3, 4))
    assert a.equals(b) and not a.equals(c)


def test_k_criterion_input_checks():
    with pytest.raises(ValueError, match="normal_images"):
        selection.k_criterion(gaussian_score, torch.zeros(1, 1, 8, 8), SDE, [0.1])
    with pytest.raises(ValueError, match="normal_images"):
        selection.k_criterion(gaussian_score, torch.zeros(4, 8, 8), SDE, [0.1])


def test_select_k_takes_the_largest_defined_criterion():
    table = pd.DataFrame({"k": [1e-3, 1e-2, 0.1, 1.0], "criterion": [2.0, np.nan, 5.0, 1.0]})
    assert selection.select_k(table) == 0.1
    with pytest.raises(ValueError, match="undefined"):
        selection.select_k(table.assign(criterion=np.nan))


def test_detector_k_criterion_uses_the_detectors_settings():
    """The same table as k_criterion with the detector's model, N, batch size and post-processing; an unfitted
    detector is refused."""
    from scoreviz import methods

    class Model:                      # the exact Gaussian score in the place of a trained network
        sde = SDE

        def __call__(self, x, t):
            return gaussian_score(x, t)

    det = methods.SPR(n=2, kernel=3, out_size=12, resize="bilinear", padding="zeros", batch_size=5)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with pytest.raises(RuntimeError, match="not fitted"):
        selection.detector_k_criterion(det, x, [0.01])
    det.model, det.fitted = Model(), True
    got = selection.detector_k_criterion(det, x, [0.01, 0.1], seed=3)
    want = selection.k_criterion(gaussian_score, x, SDE, [0.01, 0.1], n=2, kernel=3, out_size=12, resize="bilinear",
                                 padding="zeros", batch_size=5, seed=3)
    pd.testing.assert_frame_equal(got, want)
    assert not got.equals(selection.k_criterion(gaussian_score, x, SDE, [0.01, 0.1], seed=3))   # defaults differ


# ---------------------------------------------------------------------------------------------------------
# Score-DD: feature layers and the window of start times {t}

def _unit_images(n, c, s, seed=0):
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_pseudo_defects_one_rectangle_of_the_documented_size_and_seeded():
    x = _unit_images(6, 2, 24)
    y, m = selection.pseudo_defects(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and m.shape == (6, 24, 24) and m.dtype == torch.bool
    assert y.abs().max() <= 1                                   # clipped to the image range
    assert torch.equal(y[~m[:, None].expand_as(y)], x[~m[:, None].expand_as(x)])     # nothing outside the mask
    for mask in m:                                              # one rectangle, sides in [1/6, 1/3] of 24 px
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert 4 <= h <= 8 and 4 <= w <= 8 and mask.sum() >= 0.8 * h * w
    y2, m2 = selection.pseudo_defects(x, torch.Generator().manual_seed(0))
    y3, _ = selection.pseudo_defects(x, torch.Generator().manual_seed(1))
    assert torch.equal(y, y2) and torch.equal(m, m2) and not torch.equal(y, y3)


def test_selection_table_prefers_the_informative_layer_and_window():
    """Synthetic grid: layer 'good' lights up the pseudo-defect masks at the 3 earliest grid times only."""
    g = torch.Generator().manual_seed(0)
    G, B, S = 6, 10, 8
    masks = torch.zeros(B, S, S, dtype=torch.bool)
    masks[:, 2:5, 2:5] = True
    base = lambda: 1 + 3 * torch.rand(G, B, S, S, generator=g)  # noqa: E731
    normal = {"good": base(), "noise": base()}
    pseudo = {"good": base(), "noise": base()}
    ts_grid = torch.linspace(0.3, 0.05, G)                 # decreasing; indices 3, 4, 5 = smallest times
    pseudo["good"][3:] += 6 * masks.float()   # one boosted time adds 6, the noise of 3 times spans 9
    tab = selection.selection_table(normal, pseudo, masks, ts_grid, T=3, max_layers=2)
    best = tab.iloc[0]
    assert best["layers"] == ("good",) and best["detect"] > 0.99
    row = lambda idx: tab[(tab.layers == ("good",)) & (tab.t_index == idx)].iloc[0]  # noqa: E731
    assert row((3, 4, 5))["detect"] == best["detect"] and row((0, 1, 2))["detect"] < 0.75
    assert len(tab) == (G - 3 + 1) * 3 and {"image_auroc", "pixel_auroc", "stability"} <= set(tab.columns)
    with pytest.raises(ValueError, match="T <="):
        selection.selection_table(normal, pseudo, masks, ts_grid, T=7)


def test_candidate_lookup_by_column_and_by_settings():
    tab = pd.DataFrame({"layers": [("a",), ("a", "b")], "ts": [(0.2, 0.1), (0.2, 0.1)], "detect": [0.5, 0.9]})
    assert selection.candidate(tab, by="detect")["layers"] == ("a", "b")
    assert selection.candidate(tab, layers=["a"], ts=[0.2, 0.1])["detect"] == 0.5
    with pytest.raises(ValueError, match="no candidate"):
        selection.candidate(tab, layers=["b"], ts=[0.2, 0.1])
