import math

import pytest
import torch
import torch.nn.functional as F

from scoreviz import configs, spr
from scoreviz.maps import mean_filter, resize_maps
from scoreviz.nets import ScoreModel, load_official_spr
from scoreviz.sde import SPRSDE, bcast, get_sde
from scoreviz.spr import project_to_curve, restoration_error, restore
from scoreviz.toys import curve_manifold, line_manifold

SDE = SPRSDE(25.0)


def _std(k):
    return SDE.marginal_std(torch.tensor([k], dtype=torch.float64)).item()


def gaussian_score(x, t):
    """Exact score of N(0, I) data perturbed by the SPR SDE: -x / (1 + s(t)^2)."""
    return -x / bcast(1 + SDE.marginal_std(t) ** 2, x)


def point_mass_score(x, t):
    """Exact score of a point mass at 0 perturbed by the SPR SDE: -x / s(t)^2."""
    return -x / bcast(SDE.marginal_std(t) ** 2, x)


@pytest.mark.parametrize("shape", [(3, 2, 5, 4), (6, 3)], ids=["images", "points"])
def test_matches_independent_loop_with_same_draws(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    k, n = 0.05, 4
    got = restoration_error(gaussian_score, x, SDE, k, n, generator=torch.Generator().manual_seed(9))
    # independent implementation: the same n draws, one score call per draw, Algorithm 1's loop
    eps = torch.randn((n, *shape), generator=torch.Generator().manual_seed(9))
    std, t = _std(k), torch.full((shape[0],), k)
    ref = torch.zeros(shape[:1] + shape[2:])
    for i in range(n):
        residual = eps[i] + std * gaussian_score(x + std * eps[i], t)
        ref += residual.pow(2).sum(1) / n
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_all_draws_in_one_score_call_of_batch_b_times_n():
    calls = []

    def counting(x, t):
        calls.append((tuple(x.shape), tuple(t.shape)))
        return gaussian_score(x, t)

    x = torch.randn(5, 3, 8, 8)
    restoration_error(counting, x, SDE, 1e-3, n=3, generator=torch.Generator().manual_seed(0))
    assert calls == [((15, 3, 8, 8), (15,))]


def test_point_mass_closed_form_is_exact():
    """Data = point mass at 0: the residual is -x / s_k for every draw, so e = ||x||^2 / s_k^2 exactly."""
    x = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    e = restoration_error(point_mass_score, x, SDE, 1e-3, n=3, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(e, x.pow(2).sum(1) / _std(1e-3) ** 2, rtol=1e-9)


def test_gaussian_closed_form_expectation():
    """Data N(0, I_D): residual (eps - s x) / (1 + s^2), so E e = (D + s^2 ||x||^2) / (1 + s^2)^2."""
    D, k, n = 3, 0.3, 40000
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]], dtype=torch.float64)
    e = restoration_error(gaussian_score, x, SDE, k, n=n, generator=torch.Generator().manual_seed(3))
    s2 = _std(k) ** 2
    expected = (D + s2 * x.pow(2).sum(1)) / (1 + s2) ** 2
    assert torch.allclose(e, expected, rtol=0.03)


def test_normal_points_on_a_line_score_about_one_and_off_points_more():
    line = line_manifold(400, 4.0)
    k = 1e-3
    s = _std(k)
    x = torch.tensor([[0.0, 0.0], [0.3, 0.0], [0.0, 2 * s], [0.0, 4 * s]])
    e = restoration_error(line.score_fn(SDE), x, SDE, k, n=2000, generator=torch.Generator().manual_seed(0))
    assert e.shape == (4,)
    assert torch.allclose(e, torch.tensor([1.0, 1.0, 5.0, 17.0]), rtol=0.1)


def test_input_checks():
    with pytest.raises(ValueError, match="points"):
        restoration_error(gaussian_score, torch.zeros(2, 3, 4), SDE)
    with pytest.raises(ValueError, match="positive integer"):
        restoration_error(gaussian_score, torch.zeros(2, 3), SDE, n=0)
    with pytest.raises(ValueError, match="single number"):
        restoration_error(gaussian_score, torch.zeros(2, 3), SDE, k=torch.tensor([0.1, 0.2]))


def test_restore_is_tweedie_posterior_mean():
    """For N(mu, I) data, x~ + s^2 score = E[x | x~] = mu + (x~ - mu) / (1 + s^2)."""
    mu = torch.tensor([1.0, -2.0])
    k = 0.2
    s2 = _std(k) ** 2
    score = lambda x, t: (mu - x) / bcast(1 + SDE.marginal_std(t) ** 2, x)  # noqa: E731
    x_tilde = torch.randn(10, 2, generator=torch.Generator().manual_seed(0)) * 2
    assert torch.allclose(restore(score, x_tilde, SDE, k), mu + (x_tilde - mu) / (1 + s2), atol=1e-6)


def test_project_to_curve():
    seg = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    x = torch.tensor([[0.5, 1.0], [1.5, -0.3], [3.0, 1.0], [-1.0, -1.0]])
    expected = torch.tensor([[0.5, 0.0], [1.5, 0.0], [2.0, 0.0], [0.0, 0.0]])
    assert torch.allclose(project_to_curve(x, seg), expected)
    arc = curve_manifold(600, radius=2.0).means
    a = torch.linspace(-1.0, 1.0, 7, dtype=torch.float64)
    pts = torch.stack([a.cos(), a.sin()], 1) * torch.linspace(1.5, 2.5, 7, dtype=torch.float64)[:, None]
    proj = project_to_curve(pts, arc)
    # on the circle, at the same angle up to the chord error (a fraction of the vertex spacing 0.008 rad)
    assert torch.allclose(proj.norm(dim=1), torch.full((7,), 2.0, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(torch.atan2(proj[:, 1], proj[:, 0]), a, atol=2e-3)
    with pytest.raises(ValueError, match="vertices"):
        project_to_curve(x, seg[:1])


def test_reproducible_with_generator():
    x = torch.randn(3, 1, 4, 4)
    a = restoration_error(gaussian_score, x, SDE, generator=torch.Generator().manual_seed(5))
    b = restoration_error(gaussian_score, x, SDE, generator=torch.Generator().manual_seed(5))
    c = restoration_error(gaussian_score, x, SDE, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert math.isfinite(a.sum().item())


# ---------------------------------------------------------------------------------------------------------
# Images: Algorithm 1 end to end and the evaluation protocols.

def _squares(B=8, size=16, C=1, seed=0):
    """Normal images = 0, anomalous ones carry a bright square; masks mark the square. (B, C, S, S), (B, S, S)."""
    g = torch.Generator().manual_seed(seed)
    x, masks = torch.zeros(B, C, size, size), torch.zeros(B, size, size, dtype=torch.bool)
    for i in range(B // 2, B):
        r, c = torch.randint(2, size - 6, (2,), generator=g).tolist()
        masks[i, r:r + 4, c:c + 4] = True
        x[i, :, r:r + 4, c:c + 4] = 0.8
    return x, masks


@pytest.mark.parametrize("size,expected", [(256, 31), (192, 23), (64, 7), (48, 5), (32, 3), (8, 1)])
def test_scaled_kernel_keeps_the_share_of_the_map_and_is_odd(size, expected):
    assert spr.scaled_kernel(size) == expected
    with pytest.raises(ValueError):
        spr.scaled_kernel(0)


def test_postprocess_protocols_match_independent_implementations():
    raw = torch.rand(2, 12, 12, generator=torch.Generator().manual_seed(0))
    got = spr.postprocess(raw, kernel=5, out_size=16, **spr.PROTOCOLS["official"])
    up = F.interpolate(raw[:, None], size=(16, 16), mode="bilinear", align_corners=False)
    ref = F.avg_pool2d(up, 5, stride=1, padding=2, count_include_pad=True)[:, 0]   # the official code's filter
    assert torch.allclose(got, ref, atol=1e-6)
    paper = spr.postprocess(raw, kernel=5, out_size=16)
    assert torch.allclose(paper, mean_filter(resize_maps(raw, 16, "lanczos"), 5, padding="reflect"))
    inner = (slice(None), slice(3, -3), slice(3, -3))
    assert (paper - got)[inner].abs().max() < (paper - got).abs().max()    # they differ most at the borders


def test_error_maps_chunks_share_one_network_call_each_and_match_restoration_error():
    calls = []

    def counting(x, t):
        calls.append(x.shape[0])
        return point_mass_score(x, t)

    x = torch.randn(5, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    got = spr.error_maps(counting, x, SDE, k=1e-2, n=3, batch_size=2, generator=torch.Generator().manual_seed(1))
    assert calls == [6, 6, 3]                                   # ceil(5 / 2) calls of batch chunk * n
    assert torch.allclose(got, x.pow(2).sum(1) / _std(1e-2) ** 2, rtol=1e-5)   # closed form of the point mass
    one = spr.error_maps(gaussian_score, x, SDE, k=0.1, n=2, batch_size=8, generator=torch.Generator().manual_seed(2))
    ref = restoration_error(gaussian_score, x, SDE, 0.1, 2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(one, ref)
    with pytest.raises(ValueError, match="images must be"):
        spr.error_maps(gaussian_score, x[0], SDE)


def test_anomaly_map_spr_is_error_then_resize_then_filter():
    x, _ = _squares(4, 16)
    maps = spr.anomaly_map_spr(point_mass_score, x, SDE, k=1e-3, n=2, kernel=3, out_size=24,
                               generator=torch.Generator().manual_seed(0))
    ref = mean_filter(resize_maps(x.pow(2).sum(1) / _std(1e-3) ** 2, 24, "lanczos"), 3)
    assert maps.shape == (4, 24, 24) and torch.allclose(maps, ref, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------------------------------------------------
# The paper profile's SPR detector at paper resolution.

def test_paper_profile_maps_at_paper_resolution_from_released_weights(tmp_path, official_spr_state_dict):
    """The paper profile with released weights: 192 px images give 256 px maps through Algorithm 1."""
    cfg = configs.get("paper", "spr")
    torch.save(official_spr_state_dict, tmp_path / "bottle.pth")
    s = cfg.detector("mvtec", "bottle", n_train=200, checkpoints=tmp_path)
    model = ScoreModel(load_official_spr(s.checkpoint, in_channels=3), get_sde(s.sde, **s.sde_kwargs)).eval()
    x = torch.rand(1, 3, cfg.size, cfg.size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    maps = spr.anomaly_map_spr(model, x, model.sde, k=s.k, n=s.n, kernel=s.kernel, out_size=s.out_size,
                               resize=s.resize, padding=s.padding, generator=torch.Generator().manual_seed(0))
    assert maps.shape == (1, 256, 256) and torch.isfinite(maps).all()
