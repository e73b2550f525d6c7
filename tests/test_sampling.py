import pytest
import torch

from scoreviz.sampling import TrajectoryRecorder, generate, sample_flow_ode, sample_reverse_sde
from scoreviz.sde import VESDE, VPSDE, SubVPSDE
from scoreviz.toys import scoredd_mixture


@pytest.mark.parametrize("sde", [VESDE(0.1, 20.0, N=200), VPSDE(N=200), SubVPSDE(N=200)], ids=["ve", "vp", "subvp"])
@pytest.mark.parametrize("method", ["flow", "sde"])
def test_exact_score_carries_p1_to_mixture(sde, method):
    """Samples of p_1 driven back by the exact mixture score land on the mixture: weights and means recovered.

    (Starting from p_1 rather than the N(0, s(1)^2) prior: for VE with sigma_max = 20 the mixture's mean
    (3, 3) is still visible at t = 1, and the prior would shift the mode weights to about 0.76 / 0.24.)
    """
    gm = scoredd_mixture()
    g = torch.Generator().manual_seed(0)
    x1, _ = sde.perturb(gm.sample(3000, generator=g), torch.ones(3000), generator=g)
    sampler = sample_flow_ode if method == "flow" else sample_reverse_sde
    kw = {"generator": g} if method == "sde" else {}
    x = sampler(gm.score_fn(sde), sde, x1, sde.time_grid(1.0, sde.N, t_end=sde.eps), **kw)
    comp = gm.component_of(x)
    assert (comp == 1).float().mean().item() == pytest.approx(0.8, abs=0.03)
    for k in (0, 1):
        assert torch.allclose(x[comp == k].mean(0), gm.means[k].float(), atol=0.15)
        assert x[comp == k].std(0).mean().item() == pytest.approx(1.0, abs=0.1)


def test_generate_from_vp_prior_recovers_mixture():
    sde = VPSDE(N=200)
    gm = scoredd_mixture()
    x = generate(gm.score_fn(sde), sde, (3000, 2), generator=torch.Generator().manual_seed(1))
    assert (gm.component_of(x) == 1).float().mean().item() == pytest.approx(0.8, abs=0.03)


def test_callback_records_trajectory_and_per_sample_times():
    sde = VESDE(0.1, 20.0, N=100)
    gm = scoredd_mixture()
    rec = TrajectoryRecorder()
    x = torch.tensor([[-6.0, 5.0], [5.17, 5.2]])
    ts = sde.time_grid(torch.tensor([0.6, 0.3]), 5)
    out = sample_flow_ode(gm.score_fn(sde), sde, x, ts, callback=rec)
    path = rec.path()
    assert path.shape == (6, 2, 2) and torch.equal(path[-1], out) and torch.equal(path[0], x)
    assert torch.allclose(rec.times[1], torch.tensor([0.59, 0.29]))
    with pytest.raises(ValueError, match="ts must have shape"):
        sample_flow_ode(gm.score_fn(sde), sde, x, torch.zeros(3, 5))


def test_reverse_sde_is_reproducible_with_generator():
    sde = VPSDE(N=50)
    gm = scoredd_mixture()
    x = torch.zeros(8, 2)
    ts = sde.time_grid(0.5, 10)
    a = sample_reverse_sde(gm.score_fn(sde), sde, x, ts, generator=torch.Generator().manual_seed(5))
    b = sample_reverse_sde(gm.score_fn(sde), sde, x, ts, generator=torch.Generator().manual_seed(5))
    c = sample_reverse_sde(gm.score_fn(sde), sde, x, ts, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="unknown method"):
        generate(gm.score_fn(sde), sde, (2, 2), method="heun")
