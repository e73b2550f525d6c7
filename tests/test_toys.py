import pytest
import torch

from scoreviz.sde import SPRSDE, VESDE, VPSDE, SubVPSDE
from scoreviz.toys import GaussianMixture, curve_manifold, line_manifold, scoredd_mixture, subspace_manifold

SDES = [None, VESDE(0.1, 20.0), VPSDE(), SubVPSDE(), SPRSDE()]


@pytest.mark.parametrize("sde", SDES, ids=["data", "ve", "vp", "subvp", "spr"])
def test_score_equals_autograd_of_log_prob(sde):
    gm = GaussianMixture([0.3, 0.5, 0.2], [[-2.0, 0.0], [3.0, 1.0], [0.0, 4.0]], [0.5, 1.0, 2.0])
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(64, 2, generator=g, dtype=torch.float64) * 4).requires_grad_(True)
    t = None if sde is None else torch.rand(64, generator=g, dtype=torch.float64) * 0.99 + 0.01
    lp = gm.log_prob(x, t, sde)
    (grad,) = torch.autograd.grad(lp.sum(), x)
    assert torch.allclose(gm.score(x.detach(), t, sde), grad, rtol=1e-8, atol=1e-10)


def test_log_prob_matches_torch_distributions():
    gm = scoredd_mixture()
    x = torch.randn(10, 2, dtype=torch.float64) * 5
    comp = torch.distributions.Independent(
        torch.distributions.Normal(gm.means, gm.stds[:, None].expand(-1, 2)), 1)
    ref = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(gm.weights), comp)
    assert torch.allclose(gm.log_prob(x), ref.log_prob(x), atol=1e-10)


def test_sampling_recovers_weights_and_posterior_mean():
    gm = scoredd_mixture()
    x = gm.sample(20000, generator=torch.Generator().manual_seed(3))
    frac = (gm.component_of(x) == 1).float().mean().item()
    assert frac == pytest.approx(0.8, abs=0.01)
    sde = VESDE(0.1, 20.0)
    # Tweedie at tiny noise returns (almost) the point itself
    pm = gm.posterior_mean(x[:5], torch.full((5,), 1e-4), sde)
    assert torch.allclose(pm, x[:5], atol=0.02)


def test_manifold_mixtures_shapes_and_errors():
    assert line_manifold(50).means.shape == (50, 2)
    assert curve_manifold(70).means.shape == (70, 2)
    gm, basis = subspace_manifold(d=16, k=3, n=100, generator=torch.Generator().manual_seed(0))
    assert gm.means.shape == (100, 16) and basis.shape == (16, 3)
    assert torch.allclose(basis.T @ basis, torch.eye(3, dtype=basis.dtype), atol=1e-10)
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture([0.5, 0.6], [[0.0], [1.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match="means must have shape"):
        GaussianMixture([0.5, 0.5], [0.0, 1.0], [1.0, 1.0])


def test_empirical_score_matches_single_point_self_score():
    """With one training image the exact score of the (narrowly smoothed) empirical distribution is the self score."""
    from scoreviz.scoredd import self_score_fn
    from scoreviz.toys import EmpiricalScore

    sde = VPSDE(N=100)
    x0 = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model = EmpiricalScore(x0, sde, std=1e-4)
    x = x0 + 0.3 * torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.2, 0.5, 0.9])
    expected = self_score_fn(x0.expand(3, -1, -1, -1), sde)(x, t)
    assert torch.allclose(model(x, t), expected, rtol=1e-3, atol=1e-3)
