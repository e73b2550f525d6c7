import pytest
import torch
from helpers import ddim_reference

from scoreviz.sampling import TrajectoryRecorder, generate, randn, sample_ddim, sample_flow_ode, sample_reverse_sde
from scoreviz.sde import VESDE, VPSDE, SubVPSDE
from scoreviz.toys import GaussianMixture, scoredd_mixture


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


# ------------------------------------------------------------------------------------------------ one reverse drift
@pytest.mark.parametrize("probability_flow", [True, False])
def test_euler_samplers_step_with_the_sdes_reverse(probability_flow):
    """One step of each Euler sampler is x + drift dt (+ g sqrt(dt) z) with (drift, g) = sde.reverse(...).sde,
    and an SDE whose reverse() changes the drift changes the samplers' result (they use it, no copy)."""
    sde = VPSDE(N=100)
    gm = scoredd_mixture()
    x = torch.tensor([[-1.0, 2.0], [3.0, 0.5], [0.0, -4.0]])
    t0, t1 = 0.6, 0.55
    ts = torch.tensor([t0, t1])
    t = torch.full((3,), t0)
    drift, g = sde.reverse(gm.score_fn(sde), probability_flow=probability_flow).sde(x, t)
    expected = x + drift * (t1 - t0)
    if probability_flow:
        got = sample_flow_ode(gm.score_fn(sde), sde, x, ts)
        assert (g == 0).all()
    else:
        got = sample_reverse_sde(gm.score_fn(sde), sde, x, ts, generator=torch.Generator().manual_seed(3))
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
        expected = expected + g[:, None] * (t0 - t1) ** 0.5 * z
    assert torch.allclose(got, expected, atol=1e-6)

    calls = []

    class Frozen(VPSDE):
        """reverse() with zero drift and diffusion: a sampler that steps with it must leave x where it is."""

        def reverse(self, score_fn, probability_flow=False):
            calls.append(probability_flow)
            rev = super().reverse(score_fn, probability_flow)
            rev.sde = lambda x, t, score=None: (torch.zeros_like(x), torch.zeros(x.shape[0]))
            return rev

    frozen = Frozen(N=100)
    sampler = sample_flow_ode if probability_flow else sample_reverse_sde
    assert torch.equal(sampler(gm.score_fn(frozen), frozen, x, frozen.time_grid(0.6, 5)), x)
    assert calls == [probability_flow]


# ------------------------------------------------------------------------------------------------ callbacks
def _gaussian_vp_case(B=3, D=2):
    """Data N(m, s^2 I) under VPSDE(N=100): exact scores for the Euler samplers and DDIM times s / N."""
    sde = VPSDE(N=100)
    m, s = torch.tensor([0.7, -1.2])[:D], 0.3
    gm = GaussianMixture(torch.ones(1), m[None], torch.tensor([s]))
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(0))
    return sde, m, s, gm, x


def test_all_samplers_share_one_callback_vocabulary():
    sde, m, s, gm, x = _gaussian_vp_case()
    ts = torch.arange(12, -1, -3) / sde.N          # DDPM steps 12, 9, 6, 3, 0
    runs = {
        "flow": lambda cb: sample_flow_ode(gm.score_fn(sde), sde, x, ts, callback=cb),
        "sde": lambda cb: sample_reverse_sde(gm.score_fn(sde), sde, x, ts, generator=torch.Generator().manual_seed(1),
                                             callback=cb),
        "ddim": lambda cb: sample_ddim(gm.score_fn(sde), sde, x, ts, eta=0.5,
                                       generator=torch.Generator().manual_seed(1), callback=cb),
    }
    for name, run in runs.items():
        infos = []
        out = run(infos.append)
        assert [sorted(i) for i in infos] == [["denoised", "i", "score", "t", "x"]] * 5, name
        assert [i["i"] for i in infos] == [0, 1, 2, 3, 4]
        assert torch.equal(infos[0]["x"], x) and torch.equal(infos[-1]["x"], out)
        assert infos[-1]["score"] is None and infos[-1]["denoised"] is None
        assert all(i["t"].shape == (3,) for i in infos) and torch.allclose(infos[1]["t"], torch.full((3,), 0.09))
        for info in infos[:-1]:
            assert torch.allclose(info["score"], gm.score(info["x"], info["t"], sde))
        if name != "ddim":   # Tweedie with the exact score of a Gaussian = the exact posterior mean E[x(0) | x(t)]
            for info in infos[:-1]:
                a, std = sde.mean_coeff(info["t"])[:, None], sde.marginal_std(info["t"])[:, None]
                post = m + a * s**2 * (info["x"] - a * m) / (a**2 * s**2 + std**2)
                assert torch.allclose(info["denoised"], post, atol=1e-5)
        rec = TrajectoryRecorder()
        run(rec)
        assert rec.path().shape == (5, 3, 2) and torch.equal(rec.path()[-1], out)


# ------------------------------------------------------------------------------------------------ DDIM
def _exact_gaussian_eps(sde, m, s):
    """The exact DDPM eps-predictor E[z | x_s] for data N(m, s^2 I) (abar of step s = round(t N)), and the score
    a ScoreModel(output='eps') makes of it: -eps / marginal_std(t)."""
    table = torch.cat([torch.ones(1, dtype=torch.float64), sde.alphas_cumprod])

    def eps_fn(x, t):
        a = table[(t.double() * sde.N).round().long()][:, None]
        return ((1 - a).sqrt() * (x.double() - a.sqrt() * m) / (a * s**2 + 1 - a)).to(x.dtype)

    return eps_fn, lambda x, t: -eps_fn(x, t) / sde.marginal_std(t)[:, None]


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_matches_hand_written_loop(eta):
    sde, m, s, _, x = _gaussian_vp_case(B=4)
    eps_fn, score_fn = _exact_gaussian_eps(sde, m, s)
    steps = [47, 33, 18, 4, 1, 0]
    gens = lambda: [torch.Generator().manual_seed(20 + b) for b in range(4)]  # noqa: E731
    got = sample_ddim(score_fn, sde, x, torch.tensor(steps) / sde.N, eta=eta, generator=gens())
    ref = ddim_reference(lambda xb, step, b: eps_fn(xb, torch.tensor([step / sde.N])), sde.alphas_cumprod, x, steps,
                         eta, gens())
    assert torch.allclose(got, ref, atol=1e-5)


def test_ddim_with_exact_gaussian_score_follows_the_posterior_mean():
    """eta = 0 and the exact eps of N(m, s^2 I): every step's clean estimate is the closed-form posterior mean
    E[x0 | x_s] = m + sqrt(a) s^2 (x_s - sqrt(a) m) / (a s^2 + 1 - a), and the last step (to s = 0) returns it."""
    sde, m, s, _, x = _gaussian_vp_case(B=5)
    _, score_fn = _exact_gaussian_eps(sde, m, s)
    steps = torch.tensor([60, 45, 30, 15, 2])
    table = torch.cat([torch.ones(1, dtype=torch.float64), sde.alphas_cumprod])
    infos = []
    out = sample_ddim(score_fn, sde, x * 2, torch.cat([steps, torch.zeros(1)]) / sde.N, eta=0.0, callback=infos.append)
    for info, step in zip(infos[:-1], steps):
        a = table[step].item()
        post = m + a**0.5 * s**2 * (info["x"] - a**0.5 * m) / (a * s**2 + 1 - a)
        assert torch.allclose(info["denoised"], post, atol=1e-5)
    assert torch.allclose(out, infos[-2]["denoised"], atol=1e-6)
    assert torch.equal(infos[-1]["x"], out) and len(infos) == 6


def test_ddim_per_sample_times_and_generators_are_batch_independent():
    sde, m, s, _, x = _gaussian_vp_case(B=3)
    _, score_fn = _exact_gaussian_eps(sde, m, s)
    ts = torch.tensor([[50, 34, 18, 2, 0], [12, 9, 6, 3, 0], [4, 3, 2, 1, 0]]).T / sde.N   # (S + 1, B)
    gens = lambda idx: [torch.Generator().manual_seed(5 + i) for i in idx]  # noqa: E731
    together = sample_ddim(score_fn, sde, x, ts, eta=1.0, generator=gens(range(3)))
    alone = torch.cat([sample_ddim(score_fn, sde, x[b:b + 1], ts[:, b], eta=1.0, generator=gens([b]))
                       for b in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)
    one = sample_ddim(score_fn, sde, x, ts, eta=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(one, sample_ddim(score_fn, sde, x, ts, eta=1.0, generator=torch.Generator().manual_seed(5)))
    assert not torch.allclose(one, together)
    with pytest.raises(ValueError, match="generators for a batch"):
        sample_ddim(score_fn, sde, x, ts, generator=gens(range(2)))
    with pytest.raises(ValueError, match="DDPM steps"):
        sample_ddim(score_fn, sde, x, torch.tensor([0.5, 0.333]))
    with pytest.raises(ValueError, match="t = 0"):
        sample_ddim(score_fn, sde, x, torch.tensor([0.0, 0.0]))
    with pytest.raises(ValueError, match="VPSDE"):
        sample_ddim(score_fn, VESDE(N=100), x, torch.tensor([0.5, 0.25]))


def test_randn_one_generator_or_one_per_sample():
    both = randn((2, 5), [torch.Generator().manual_seed(s) for s in (3, 4)], "cpu", torch.float64)
    assert torch.equal(both[1], torch.randn(5, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    assert torch.equal(randn((2, 5), torch.Generator().manual_seed(3), "cpu", torch.float32),
                       torch.randn(2, 5, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="3 generators for a batch of 2"):
        randn((2, 5), [torch.Generator() for _ in range(3)], "cpu", torch.float32)
