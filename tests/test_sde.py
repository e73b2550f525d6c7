import math

import pytest
import torch

from scoreviz.sde import SDES, SPRSDE, VESDE, VPSDE, SubVPSDE, bcast, get_sde

SDE_CASES = {
    "ve": lambda: VESDE(0.01, 5.0),
    "vp": lambda: VPSDE(0.1, 20.0),
    "subvp": lambda: SubVPSDE(0.1, 20.0),
    "spr": lambda: SPRSDE(25.0),
}


@pytest.mark.parametrize("name", SDE_CASES)
@pytest.mark.parametrize("t1", [0.3, 1.0])
def test_marginal_matches_euler_maruyama(name, t1):
    """Simulating sde() forward from x(0) reproduces marginal_prob's mean and std within a few percent."""
    sde = SDE_CASES[name]()
    g = torch.Generator().manual_seed(0)
    n, steps = 10000, 400
    x0 = torch.tensor([1.0, -2.0], dtype=torch.float64).expand(n, 2)
    mean0, std0 = sde.marginal_prob(x0, torch.zeros(n, dtype=torch.float64))
    x = mean0 + bcast(std0, x0) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    dt = t1 / steps
    for i in range(steps):
        t = torch.full((n,), i * dt, dtype=torch.float64)
        f, gdiff = sde.sde(x, t)
        x = x + f * dt + bcast(gdiff, x) * math.sqrt(dt) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    mean, std = sde.marginal_prob(x0[:1], torch.tensor([t1], dtype=torch.float64))
    emp_std = x.std(0)
    assert torch.allclose(emp_std, std.expand(2), rtol=0.03), (emp_std, std)
    # mean within 3 standard errors plus 1% of |mean|
    tol = 3 * std / math.sqrt(n) + 0.01 * mean[0].abs()
    assert ((x.mean(0) - mean[0]).abs() <= tol).all(), (x.mean(0), mean)


@pytest.mark.parametrize("name", SDE_CASES)
def test_prior_sampling_matches_marginal_at_one(name):
    sde = SDE_CASES[name]()
    z = sde.prior_sampling((50000, 2), generator=torch.Generator().manual_seed(1))
    _, std = sde.marginal_prob(torch.zeros(1, 2), torch.ones(1))
    assert z.std().item() == pytest.approx(std.item(), rel=0.02)
    lp = sde.prior_logp(z[:3])
    ref = torch.distributions.Normal(0.0, std.item()).log_prob(z[:3]).sum(1)
    assert torch.allclose(lp, ref, atol=1e-4)


def test_spr_std_closed_form_and_paper_value():
    sde = SPRSDE(25.0)
    k = torch.tensor([1e-3, 0.5, 1.0])
    expected = torch.sqrt((25.0 ** (2 * k) - 1) / (2 * math.log(25.0)))
    assert torch.allclose(sde.marginal_std(k), expected, rtol=1e-6)
    assert sde.marginal_std(torch.tensor([1e-3])).item() == pytest.approx(0.0317, abs=5e-5)


def test_shapes_and_reverse():
    x = torch.randn(4, 3, 8, 8)
    t = torch.rand(4)
    for name, make in SDE_CASES.items():
        sde = make()
        mean, std = sde.marginal_prob(x, t)
        assert mean.shape == x.shape and std.shape == (4,)
        f, g = sde.sde(x, t)
        assert f.shape == x.shape and g.shape == (4,)
        score_fn = lambda y, s: -y
        rev = sde.reverse(score_fn, probability_flow=True)
        rf, rg = rev.sde(x, t)
        assert torch.allclose(rf, f + 0.5 * bcast(g**2, x) * x, atol=1e-5)
        assert (rg == 0).all()
        rf, rg = sde.reverse(score_fn).sde(x, t)
        assert torch.allclose(rf, f + bcast(g**2, x) * x, atol=1e-5) and torch.equal(rg, g)
        # a precomputed score (what the samplers pass) replaces the call of score_fn
        rf2, rg2 = sde.reverse(lambda y, s: 1 / 0).sde(x, t, score=-x)
        assert torch.equal(rf2, rf) and torch.equal(rg2, rg)


def test_ve_discretisation_telescopes_to_sigma_max():
    sde = VESDE(0.01, 50.0, N=100)
    t = torch.arange(sde.N) / (sde.N - 1)
    _, g = sde.discretize(torch.zeros(sde.N, 1), t)
    assert (g**2).sum().item() == pytest.approx(50.0**2, rel=1e-5)


def test_vp_discrete_betas_are_ddpm_schedule():
    sde = VPSDE(0.1, 20.0, N=1000)
    b = sde.discrete_betas
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    # the continuous marginal matches the DDPM product closely
    abar = sde.alphas_cumprod[499].item()
    t = torch.tensor([500 / 1000])  # 500 DDPM steps taken
    assert sde.mean_coeff(t).item() ** 2 == pytest.approx(abar, rel=0.02)


def test_time_grid():
    sde = VESDE(N=2000)
    ts = sde.time_grid(torch.tensor([0.125, 0.025]), 1)
    assert ts.shape == (2, 2)
    assert torch.allclose(ts[1], torch.tensor([0.125 - 1 / 2000, 0.025 - 1 / 2000]))
    ts = sde.time_grid(1.0, 4, t_end=0.2)
    assert torch.allclose(ts, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2]))


def test_get_sde_and_bad_parameters():
    assert isinstance(get_sde("sub-VP"), SubVPSDE)
    with pytest.raises(ValueError, match="valid names: ve, vp, subvp, spr"):
        get_sde("edm")
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESDE(10.0, 1.0)
    with pytest.raises(ValueError, match="N"):
        VPSDE(N=0)
    assert set(SDES) == {"ve", "vp", "subvp", "spr"}
