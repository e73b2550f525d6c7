import pytest
import torch

from scoreviz.sampling import TrajectoryRecorder
from scoreviz.scoredd import reverse_pair, score_distance, self_score_fn, whole_score_difference
from scoreviz.sde import VESDE, VPSDE
from scoreviz.toys import scoredd_mixture


def _x0(n=8, d=2, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("sde, tol", [(VESDE(0.01, 20.0, N=100), 0.05), (VPSDE(N=200), 0.05)], ids=["ve", "vp"])
def test_self_path_returns_to_x0_with_r_equal_tN(sde, tol):
    """Flow ODE driven by the self score from x(t) back to t = 0 retraces the way to x0 (Euler, residual std)."""
    x0 = _x0()
    t = 0.6
    gm = scoredd_mixture()
    x_whole, x_self = reverse_pair(gm.score_fn(sde), x0, sde, t, round(t * sde.N),
                                   generator=torch.Generator().manual_seed(1))
    assert (x_self - x0).norm(dim=1).max().item() < tol
    # the whole score instead carries points into the mixture's modes
    assert (x_whole - x0).norm(dim=1).max().item() > 1.0


@pytest.mark.parametrize("probability_flow", [True, False], ids=["flow", "sde"])
def test_paths_share_z_and_noise(probability_flow):
    """With the self score as 'whole' score both paths are the same computation: identical results."""
    sde = VESDE(0.1, 20.0, N=100)
    x0 = _x0()
    x_whole, x_self = reverse_pair(self_score_fn(x0, sde), x0, sde, 0.5, 20, probability_flow=probability_flow,
                                   generator=torch.Generator().manual_seed(3))
    assert torch.equal(x_whole, x_self)


def test_shapes_images_and_per_sample_times_with_recorders():
    sde = VESDE(0.1, 20.0, N=100)
    x0 = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    rec_w, rec_s = TrajectoryRecorder(), TrajectoryRecorder()
    t = torch.tensor([0.3, 0.6])
    x_w, x_s = reverse_pair(lambda x, t: -x, x0, sde, t, 5, callback=(rec_w, rec_s),
                            generator=torch.Generator().manual_seed(0))
    assert x_w.shape == x0.shape and x_s.shape == x0.shape
    assert rec_w.path().shape == (6, 2, 3, 4, 4) and rec_s.path().shape == (6, 2, 3, 4, 4)
    assert torch.allclose(rec_w.times[0], t) and torch.allclose(rec_s.times[-1], t - 5 / sde.N)
    assert torch.equal(rec_w.path()[0], rec_s.path()[0])  # both start at the same x(t)
    # the starting x(t) has the marginal std of each sample's own start time
    z = (rec_w.path()[0] - x0).flatten(1).std(1) / sde.marginal_std(t)
    assert z.min().item() > 0.4 and z.max().item() < 2.0


def test_callable_callback_gets_path_key():
    sde = VESDE(0.1, 20.0, N=100)
    seen = []
    reverse_pair(lambda x, t: -x, _x0(3), sde, 0.2, 4, callback=lambda info: seen.append((info["path"], info["i"])))
    assert [p for p, _ in seen] == ["whole"] * 5 + ["self"] * 5
    with pytest.raises(ValueError, match="pair"):
        reverse_pair(lambda x, t: -x, _x0(3), sde, 0.2, 4, callback=(None, None, None))


@pytest.mark.parametrize("probability_flow", [True, False], ids=["flow", "sde"])
def test_reproducible_with_generator(probability_flow):
    sde = VESDE(0.1, 20.0, N=100)
    score = scoredd_mixture().score_fn(sde)
    x0 = _x0()
    run = lambda seed: reverse_pair(score, x0, sde, 0.6, 10, probability_flow=probability_flow,  # noqa: E731
                                    generator=torch.Generator().manual_seed(seed))
    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_without_generator_uses_global_rng():
    sde = VESDE(0.1, 20.0, N=100)
    x0 = _x0()
    torch.manual_seed(0)
    a = reverse_pair(lambda x, t: -x, x0, sde, 0.6, 5, probability_flow=False)
    torch.manual_seed(0)
    b = reverse_pair(lambda x, t: -x, x0, sde, 0.6, 5, probability_flow=False)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_argument_errors():
    sde = VESDE(0.1, 20.0, N=100)
    x0 = _x0(4)
    with pytest.raises(ValueError, match="run past t = 0"):
        reverse_pair(lambda x, t: -x, x0, sde, 0.1, 11)
    with pytest.raises(ValueError, match="positive integer"):
        reverse_pair(lambda x, t: -x, x0, sde, 0.1, 0)
    with pytest.raises(ValueError, match="shape"):
        reverse_pair(lambda x, t: -x, x0, sde, torch.tensor([0.1, 0.2]), 1)
    with pytest.raises(ValueError, match="same shape"):
        score_distance(lambda x, t: -x, x0, x0[:2], 0.0)


def test_whole_score_difference_ranks_anomaly_and_sums_t_scales():
    sde = VESDE(0.1, 20.0, N=100)
    gm = scoredd_mixture()
    score = gm.score_fn(sde)
    x0 = torch.tensor([[-6.0, 5.0], [5.17, 5.2], [-4.2, -4.3]]).repeat(50, 1)
    s = whole_score_difference(score, x0, sde, 0.6, 60, generator=torch.Generator().manual_seed(0)).reshape(50, 3)
    assert s.shape == (50, 3)
    med = s.median(0).values
    assert med[0] > 3 * med[1] and med[0] > 3 * med[2]
    # T scales: the sum over start times, each with its own draw from the same generator stream
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    total = whole_score_difference(score, x0[:6], sde, (0.3, 0.2), 1, probability_flow=False, generator=g1)
    parts = [whole_score_difference(score, x0[:6], sde, t, 1, probability_flow=False, generator=g2) for t in (0.3, 0.2)]
    assert torch.allclose(total, parts[0] + parts[1])
    assert torch.equal(score_distance(score, x0, x0, 0.0), torch.zeros(len(x0)))


# ==============================================================================================
# Score-DD on images: T scales, feature distances, Table 4's baselines, start times, the VE sigma_max rule
# ==============================================================================================
import itertools  # noqa: E402
import math  # noqa: E402

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from scoreviz import configs, nets, scoredd  # noqa: E402
from scoreviz.sde import SubVPSDE, get_sde  # noqa: E402


class _ToyNet(nn.Module):
    """A tiny conv 'network' with features 'full' (H x W) and 'half' (H/2 x W/2); records calls (batch, times)."""

    def __init__(self, c=1):
        super().__init__()
        self.conv = nn.Conv2d(c, 3, 3, padding=1)
        self.out = nn.Conv2d(3, c, 1)
        self.seen = []

    def forward(self, x, t, return_features=False):
        self.seen.append((x.shape[0], t.detach().clone()))
        h = torch.tanh(self.conv(x) + t[:, None, None, None])
        feats = {"full": h, "half": F.avg_pool2d(h, 2)}
        out = self.out(h)
        return (out, feats) if return_features else out


def _toy_model(sde, seed=0, c=1):
    torch.manual_seed(seed)
    return nets.ScoreModel(_ToyNet(c), sde).eval()


def _images(n=3, c=1, s=8, seed=0):
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("sde", [VESDE(0.01, 10.0, N=200), VPSDE(N=200), SubVPSDE(N=200)], ids=["ve", "vp", "subvp"])
@pytest.mark.parametrize("probability_flow", [True, False], ids=["flow", "sde"])
def test_t_scales_one_batched_call_per_step_and_counted_cost(sde, probability_flow):
    """All T start times of a batch share one network call per step (batch T*B), then one feature call (2*T*B)."""
    model, x = _toy_model(sde), _images(3)
    ts, r = scoredd.start_times((25, 20, 15, 10, 5), sde), 2
    with nets.NetworkCounter(model) as counter:
        d = scoredd.distance_maps(model, x, sde, ts, r, ["full", "half"], probability_flow,
                                  generator=torch.Generator().manual_seed(0))
    assert counter.calls == r + 1 and counter.per_image(len(x)) == len(ts) * (r + 2)
    batches = [b for b, _ in model.net.seen]
    assert batches == [len(ts) * 3] * r + [2 * len(ts) * 3]
    t_rep = torch.tensor(ts).repeat_interleave(3)
    for i in range(r):                                     # step i evaluates the whole score at t - i/N
        assert torch.allclose(model.net.seen[i][1], t_rep - i / sde.N)
    assert torch.allclose(model.net.seen[-1][1], torch.cat([t_rep, t_rep]) - r / sde.N)
    assert set(d) == {"full", "half"} and all(v.shape == (len(ts), 3, 8, 8) for v in d.values())


def test_baseline_costs_counted():
    """Sec. 5.5: T (r + 2) with T scales, t N - 1 + 2 without, t N for the full reconstruction (AnoDDPM-like)."""
    sde = VPSDE(N=2000)
    model, x = _toy_model(sde), _images(1, s=2)
    ts = scoredd.start_times((250, 200, 150, 100, 50), sde)
    counts = {}
    for method in scoredd.METHODS:
        with nets.NetworkCounter(model) as c:
            maps = scoredd.anomaly_maps(model, x, sde, ts, 1, ["full"], method=method,
                                        generator=torch.Generator().manual_seed(0))
        assert maps.shape == (1, 2, 2)
        counts[method] = c.per_image(len(x))
    from scoreviz.paper import NETWORK_CALLS
    assert counts == {k: NETWORK_CALLS["scoredd"][k] for k in ("t_scales", "no_t_scales")} | {"recon_loss": 250}


def test_self_score_as_whole_score_gives_zero_maps():
    """With s_w = the self score both paths are the same computation: every map is exactly 0 (flow and SDE)."""
    sde = VESDE(0.01, 10.0, N=100)
    x = _images(2)

    class SelfModel(nn.Module):                             # score = self score of x; features = the input
        def forward(self, y, t):
            return scoredd.self_score_fn(x.repeat(y.shape[0] // len(x), 1, 1, 1), sde)(y, t)

        def features(self, y, t):
            return {"x": y}

    for pf in (True, False):
        d = scoredd.distance_maps(SelfModel(), x, sde, (0.3,), 3, None, pf, generator=torch.Generator().manual_seed(1))
        assert torch.equal(d["x"], torch.zeros_like(d["x"]))
        m = scoredd.anomaly_maps(SelfModel(), x, sde, (0.3,), method="recon_loss", probability_flow=pf,
                                 generator=torch.Generator().manual_seed(1))
        assert torch.equal(m, torch.zeros_like(m))


def test_feature_distances_euclidean_without_normalisation_and_upsampled():
    class Fixed(nn.Module):
        def features(self, y, t):
            return {"a": y * 2.0, "low": F.avg_pool2d(y, 2)}

    xw, xs = _images(2, c=3, seed=1), _images(2, c=3, seed=2)
    d = scoredd.feature_distances(Fixed(), xw, xs, 0.1)
    assert torch.allclose(d["a"], 2 * (xw - xs).norm(dim=1), atol=1e-6)      # channel norm, no l2 normalisation
    assert d["low"].shape == (2, 4, 4)
    up = scoredd.feature_distances(Fixed(), xw, xs, 0.1, ["low"], size=8)["low"]
    assert up.shape == (2, 8, 8)        # bilinear: convex combinations of the low-resolution values, no overshoot
    assert up.min() >= d["low"].min() - 1e-6 and up.max() <= d["low"].max() + 1e-6 and not torch.allclose(up, up.mean())
    with pytest.raises(ValueError, match="feature keys: a, low"):
        scoredd.feature_distances(Fixed(), xw, xs, 0.1, ["enc9"])
    with pytest.raises(ValueError, match="same shape"):
        scoredd.feature_distances(Fixed(), xw, xs[:1], 0.1)


def test_combine_maps_argument_errors():
    d = {"a": torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))}
    with pytest.raises(ValueError, match="combine"):
        scoredd.combine_maps(d, combine="max")
    with pytest.raises(ValueError, match="feature keys: a"):
        scoredd.combine_maps(d, ["b"])


def test_argument_errors_images():
    sde = VPSDE(N=100)
    model, x = _toy_model(sde), _images(1)
    with pytest.raises(ValueError, match="unknown method"):
        scoredd.anomaly_maps(model, x, sde, (0.1,), method="anoddpm")
    with pytest.raises(ValueError, match=r"in \[1, N = 100\]"):
        scoredd.start_times((0, 10), sde)
    with pytest.raises(ValueError, match="no_t_scales needs"):
        scoredd.anomaly_maps(model, x, sde, (0.01,), layers=["full"], method="no_t_scales")


def test_chunked_shapes_and_seeded_maps_reproduce():
    sde = VPSDE(N=200)
    model, x = _toy_model(sde), _images(4)
    run = lambda bs, seed=0: scoredd.anomaly_maps(model, x, sde, (0.1, 0.05), 1, ["full", "half"],  # noqa: E731
                                                  generator=torch.Generator().manual_seed(seed), batch_size=bs)
    assert torch.equal(run(None), run(None)) and not torch.equal(run(None), run(None, 1))
    assert run(2).shape == run(None).shape == (4, 8, 8)


def test_anomaly_maps_rank_an_off_manifold_image_with_an_exact_score():
    """Exact score of 'all pixels equal' data (a 1-D manifold in 16-D): a noisy image gets the larger map."""
    sde = VESDE(0.01, 5.0, N=200)
    D = 16
    ones = torch.ones(D) / math.sqrt(D)

    class LineModel(nn.Module):                        # data: x = c * 1, c ~ N(0, 1); score of p_t in closed form
        def forward(self, y, t):
            yf, s2 = y.flatten(1), sde.marginal_std(t)[:, None] ** 2
            along = (yf @ ones)[:, None] * ones
            return (-(yf - along) / s2 - along / (D + s2)).reshape(y.shape)

        def features(self, y, t):
            return {"score": self.forward(y, t)}

    normal = torch.full((1, 1, 4, 4), 0.3)
    odd = normal + 0.3 * torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    maps = scoredd.anomaly_maps(LineModel(), torch.cat([normal, odd]), sde, (0.3, 0.25, 0.2), 1, ["score"],
                                generator=torch.Generator().manual_seed(0))
    assert maps[1].max() > 3 * maps[0].max()


def test_sigma_max_rule_and_build_sde():
    x = _images(5, c=1, s=4, seed=3)
    brute = max((a - b).norm().item() for a, b in itertools.product(x, x))
    assert scoredd.sigma_max_rule(x) == pytest.approx(brute, rel=1e-6)
    sde = scoredd.build_sde("ve", {"sigma_min": 0.01, "sigma_max": None, "N": 200}, x)
    assert sde.sigma_max == round(brute, 1) and sde.N == 200
    assert isinstance(scoredd.build_sde("subvp", {"N": 50}), SubVPSDE)
    with pytest.raises(ValueError, match="training images"):
        scoredd.build_sde("ve", {"sigma_max": None})


@pytest.mark.parametrize("experiment", ["scoredd_images", "scoredd_mnist"])
@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_configs_layers_exist_in_the_profiles_networks(experiment, profile):
    cfg = configs.get(profile, experiment)
    size = cfg.size if profile == "cpu" or experiment == "scoredd_mnist" else 64   # keys do not depend on size
    kw = dict(cfg.net_kwargs, in_channels=1)
    if nets.PRESETS[cfg.net][0] is nets.ResUNet:
        kw["image_size"] = size
    net = nets.build(cfg.net, **kw).eval()
    with torch.no_grad():
        feats = net(torch.zeros(1, 1, size, size), torch.full((1,), 0.1), return_features=True)[1]
    assert set(cfg.layers) <= set(feats), (cfg.layers, list(feats))
    sde = get_sde("vp", **cfg.sde_kwargs["vp"])
    assert len(scoredd.start_times(cfg.t_steps["vp"], sde)) == 5


# The paper profiles' networks at paper resolution: one DSM training step and one detection on one image (CPU).
# (VE / Fourier for MVTec at 256 px; VP / positional for MNIST at 32 px; the embedding choice per SDE is
# tested in test_methods.)
@pytest.mark.parametrize("experiment, sde_name, channels", [("scoredd_images", "ve", 3), ("scoredd_mnist", "vp", 1)],
                         ids=["ncsnpp-ve-256px", "ddpmpp-vp-32px"])
def test_paper_profile_network_trains_and_detects_at_paper_resolution(experiment, sde_name, channels):
    from scoreviz.train import dsm_loss

    cfg = configs.get("paper", experiment)
    sde = scoredd.build_sde(sde_name, cfg.sde_kwargs[sde_name])
    kw = dict(cfg.net_kwargs, in_channels=channels, embedding="fourier" if sde_name == "ve" else "positional")
    torch.manual_seed(0)
    model = nets.ScoreModel(nets.build(cfg.net, **kw), sde)
    x = _images(1, c=channels, s=cfg.size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    loss = dsm_loss(model, x, generator=torch.Generator().manual_seed(0))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    model.eval()
    ts = scoredd.start_times(cfg.t_steps[sde_name], sde)
    ts = ts[:1] if experiment == "scoredd_images" else ts     # NCSN++ at 256 px costs seconds per sample on a CPU: one start time
    with nets.NetworkCounter(model) as c:
        maps = scoredd.anomaly_maps(model, x, sde, ts, cfg.r, cfg.layers, probability_flow=True,
                                    generator=torch.Generator().manual_seed(0))
    assert maps.shape == (1, cfg.size, cfg.size) and torch.isfinite(maps).all() and maps.max() > 0
    assert c.per_image(1) == len(ts) * (cfg.r + 2)
    assert c.calls == cfg.r + 1


def test_network_counter_stops_counting_after_the_block():
    from scoreviz import nets

    model = nets.ScoreModel(nets.build("tiny", in_channels=1, channels=(8, 16), groups=4, embed_dim=16), VPSDE())
    x, t = _images(2), torch.full((2,), 0.5)
    with nets.NetworkCounter(model) as c:
        model(x, t)
        model(torch.cat([x, x]), torch.cat([t, t]))
    model(x, t)
    assert (c.calls, c.evaluations, c.per_image(2)) == (2, 6, 3.0)
