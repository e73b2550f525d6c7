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
    assert s.shape == (50, 3) and (s >= 0).all()
    med = s.median(0).values
    assert med[0] > 3 * med[1] and med[0] > 3 * med[2]
    # T scales: the sum over start times, each with its own draw from the same generator stream
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    total = whole_score_difference(score, x0[:6], sde, (0.3, 0.2), 1, probability_flow=False, generator=g1)
    parts = [whole_score_difference(score, x0[:6], sde, t, 1, probability_flow=False, generator=g2) for t in (0.3, 0.2)]
    assert torch.allclose(total, parts[0] + parts[1])
    assert torch.equal(score_distance(score, x0, x0, 0.0), torch.zeros(len(x0)))
