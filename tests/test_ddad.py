"""DDAD's equations: schedule and time convention, conditioned DDIM against an exact denoiser, distances,
normalisation; the 'ddad' config's per-category settings.
The feature extractors and domain adaptation are tested in test_features.py, the detector in test_methods.py."""
import pytest
import torch
import torch.nn as nn
from helpers import ddim_reference

from scoreviz import configs, ddad
from scoreviz.nets import ScoreModel, build
from scoreviz.sde import VPSDE


# ------------------------------------------------------------------------------------------------ schedule
def test_schedule_and_time_convention():
    sde = VPSDE()
    assert ddad.alpha_bar(sde, 0).item() == 1.0
    assert torch.allclose(ddad.alpha_bar(sde, [1, 250, 1000]), sde.alphas_cumprod[[0, 249, 999]])
    assert sde.discrete_betas[0].item() == pytest.approx(1e-4) and sde.discrete_betas[-1].item() == pytest.approx(0.02)
    steps = torch.arange(10, 1001, 10)
    # the continuous VP SDE at t = s / N has the noise level of DDPM step s
    std_cont = sde.marginal_std(ddad.step_time(steps, sde).float()).double()
    std_disc = (1 - ddad.alpha_bar(sde, steps)).sqrt()
    assert (std_cont - std_disc).abs().max() < 1.5e-3
    assert ((std_cont - std_disc).abs() / std_disc)[24:].max() < 3e-3   # s >= 250
    assert ddad.ddim_steps(250, 25) == [250, 225, 200, 175, 150, 125, 100, 75, 50, 25, 0]
    assert ddad.ddim_steps(100, 30) == [100, 70, 40, 10, 0]
    with pytest.raises(ValueError, match="positive"):
        ddad.ddim_steps(0, 25)
    with pytest.raises(ValueError, match="0..1000"):
        ddad.alpha_bar(sde, 1001)


class PointMassNet(nn.Module):
    """The exact eps-predictor when all data sit at one image x_star (DDPM step s = round(t N))."""

    def __init__(self, x_star, sde):
        super().__init__()
        self.register_buffer("x_star", x_star)
        self.sde = sde
        self.scale = nn.Parameter(torch.ones(()))   # so that .parameters() is not empty

    def forward(self, x, t, return_features=False):
        a = ddad.alpha_bar(self.sde, (t.double() * self.sde.N).round().long()).to(x.dtype)
        a = a.view(-1, 1, 1, 1)
        eps = (x - a.sqrt() * self.x_star) / (1 - a).sqrt()
        return (eps, {"id": x}) if return_features else eps


def _point_mass_model(shape=(1, 8, 8), seed=0):
    sde = VPSDE()
    x_star = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return ScoreModel(PointMassNet(x_star, sde), sde, output="eps"), x_star


def test_reconstruct_with_exact_denoiser_returns_the_data_point():
    model, x_star = _point_mass_model()
    x = torch.rand(3, *x_star.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for eta in (0.0, 1.0):
        x0 = ddad.reconstruct(model, x, w=0.0, eta=eta, generator=torch.Generator().manual_seed(2))
        assert torch.allclose(x0, x_star.expand_as(x), atol=1e-4)
    # conditioning on y = x_star changes nothing either
    x0 = ddad.reconstruct(model, x, x_star.expand_as(x), w=5.0, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(x0, x_star.expand_as(x), atol=1e-4)


def test_conditioning_pulls_toward_the_target_and_matches_closed_form():
    model, x_star = _point_mass_model()
    y = x_star[None] + 0.5 * torch.randn(2, *x_star.shape, generator=torch.Generator().manual_seed(3))
    dists = []
    for w in (0.0, 0.5, 1.0, 2.0):
        x0 = ddad.reconstruct(model, y, w=w, generator=torch.Generator().manual_seed(4))
        dists.append((x0 - y).abs().mean().item())
    assert all(a > b for a, b in zip(dists, dists[1:])), dists
    # first step: x0_hat = x0(eps) + w (1 - abar) (y - x0(eps)), and x0(eps) = x_star exactly here
    infos = []
    ddad.reconstruct(model, y, w=1.5, generator=torch.Generator().manual_seed(4), callback=infos.append)
    a = ddad.alpha_bar(model.sde, 250).item()
    # the callback sees every state: the noised input at s = 250, ..., the reconstruction at s = 0
    assert [round(info["t"][0].item() * model.sde.N) for info in infos] == ddad.ddim_steps(250, 25)
    expected = x_star + 1.5 * (1 - a) * (y - x_star)
    assert torch.allclose(infos[0]["denoised"], expected, atol=1e-4)


def test_reconstruct_per_image_generators_make_draws_batch_independent():
    model, x_star = _point_mass_model()
    y = torch.randn(4, *x_star.shape, generator=torch.Generator().manual_seed(5))
    gens = lambda idx: [torch.Generator().manual_seed(100 + i) for i in idx]  # noqa: E731
    together = ddad.reconstruct(model, y, w=1.0, generator=gens(range(4)))
    alone = torch.cat([ddad.reconstruct(model, y[i:i + 1], w=1.0, generator=gens([i])) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-6)
    with pytest.raises(ValueError, match="generators for a batch"):
        ddad.reconstruct(model, y, w=1.0, generator=gens(range(3)))
    with pytest.raises(ValueError, match="shaped like x"):
        ddad.reconstruct(model, y, y[:2], w=1.0)


# ------------------------------------------------------------------------------------------------ distances
def test_pixel_and_feature_distances():
    x = torch.zeros(2, 3, 8, 8)
    y = x.clone()
    y[0, :, 2, 3] = torch.tensor([0.3, 0.6, 0.9])
    d = ddad.pixel_distance(x, y)
    assert d.shape == (2, 8, 8) and d[0, 2, 3].item() == pytest.approx(0.6) and d.sum().item() == pytest.approx(0.6)
    g = torch.Generator().manual_seed(0)
    fa = {"a": torch.randn(2, 5, 4, 4, generator=g), "b": torch.randn(2, 7, 2, 2, generator=g)}
    assert ddad.feature_distance(fa, fa, 8, ("a", "b")).abs().max() < 1e-5
    fb = {k: torch.randn(v.shape, generator=g) for k, v in fa.items()}
    got = ddad.feature_distance(fa, fb, (8, 8), ("a",), pool=3)
    # reference: explicit 3x3 neighbourhood mean with zero padding, cosine over channels, bilinear upsampling
    pa, pb = (torch.nn.functional.pad(f["a"], (1, 1, 1, 1)) for f in (fa, fb))
    ma = torch.stack([pa[..., i:i + 4, j:j + 4] for i in range(3) for j in range(3)]).mean(0)
    mb = torch.stack([pb[..., i:i + 4, j:j + 4] for i in range(3) for j in range(3)]).mean(0)
    ref = 1 - (ma * mb).sum(1) / (ma.norm(dim=1) * mb.norm(dim=1))
    ref = torch.nn.functional.interpolate(ref[:, None], size=(8, 8), mode="bilinear", align_corners=True)[:, 0]
    assert got.shape == (2, 8, 8) and torch.allclose(got, ref, atol=1e-5)
    with pytest.raises(ValueError, match="not produced"):
        ddad.feature_distance(fa, fb, 8, ("layer9",))


def test_combine_maps_normalisations():
    g = torch.Generator().manual_seed(0)
    d_p, d_f = torch.rand(6, 8, 8, generator=g), torch.rand(6, 8, 8, generator=g) * 0.3
    d_p[3] *= 5
    s = (d_f.max() / d_p.max()).item()
    train = ddad.combine_maps(d_p, d_f, v=2.0, norm="train", scale=s, blur_sigma=0)
    assert torch.allclose(train, d_f + 2.0 * s * d_p)
    assert torch.allclose(ddad.combine_maps(d_p, d_f, v=2.0, norm="batch", blur_sigma=0), train)  # one batch
    per_image = ddad.combine_maps(d_p, d_f, norm="image", blur_sigma=0)
    si = d_f[1].max() / d_p[1].max()
    assert torch.allclose(per_image[1], d_f[1] + si * d_p[1])
    assert torch.allclose(ddad.combine_maps(d_p, d_f, norm="batch", batch_size=1, blur_sigma=0), per_image)
    # batch-wide maxima: image 0's map changes with the company it keeps (image 3 is in its batch of 4)
    b2, b4 = (ddad.combine_maps(d_p, d_f, norm="batch", batch_size=b, blur_sigma=0) for b in (2, 4))
    assert not torch.allclose(b2[0], b4[0])
    with pytest.raises(ValueError, match="calibrate"):
        ddad.combine_maps(d_p, d_f, norm="train")
    with pytest.raises(ValueError, match="unknown norm"):
        ddad.combine_maps(d_p, d_f, norm="global")


# ------------------------------------------------------------------------------------------------ settings
def test_paper_schedule_takes_ten_network_calls():
    """The paper profile's DDIM schedule (noise to step 250, steps of 25): 10 network calls per image."""
    cfg = configs.get("paper", "ddad")
    model, x_star = _point_mass_model()
    calls = []
    model.net.register_forward_hook(lambda *a: calls.append(1))
    x0 = ddad.reconstruct(model, x_star[None], w=3.0, t_start=cfg.t_start, skip=cfg.skip, eta=cfg.eta,
                          generator=torch.Generator().manual_seed(0))
    assert len(calls) == 10 and torch.isfinite(x0).all()


# ------------------------------------------------------------------------------------------------ reconstruct = reference loop
def _conditioned_ddim_reference(model, x, y, *, w, t_start, skip, eta, generators):
    """DDAD's conditioned DDIM written out on python floats, one image at a time, with the network's eps directly
    (no score conversion): x_T = sqrt(a) x + sqrt(1 - a) z; per step eps^ = eps - w sqrt(1 - a) (y_s - x_s)."""
    sde = model.sde
    table = [1.0] + sde.alphas_cumprod.tolist()
    steps = list(range(t_start, 0, -skip)) + [0]
    a = table[steps[0]]
    x_t = torch.cat([a**0.5 * x[b:b + 1] + (1 - a) ** 0.5 * torch.randn(x.shape[1:], generator=generators[b])
                     for b in range(x.shape[0])])

    def conditioned_eps(xb, s, b):
        a = table[s]
        eps = model.eps(xb, torch.tensor([s / sde.N]))
        return eps - w * (1 - a) ** 0.5 * (a**0.5 * y[b:b + 1] + (1 - a) ** 0.5 * eps - xb)

    return ddim_reference(conditioned_eps, sde.alphas_cumprod, x_t, steps, eta, generators)


@pytest.mark.parametrize("w,t_start,skip,eta", [(2.0, 250, 25, 1.0), (3.0, 250, 25, 0.0), (1.0, 100, 30, 0.5)])
def test_reconstruct_equals_hand_written_conditioned_ddim(w, t_start, skip, eta):
    """reconstruct (guided score through sampling.sample_ddim) = the conditioned DDIM loop, on a seeded tiny net."""
    torch.manual_seed(0)
    model = ScoreModel(build("tiny", in_channels=1, channels=(8, 16), groups=4, embed_dim=16), VPSDE(), output="eps").eval()
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    gens = lambda: [torch.Generator().manual_seed(10 + b) for b in range(3)]  # noqa: E731
    infos = []
    got = ddad.reconstruct(model, x, y, w=w, t_start=t_start, skip=skip, eta=eta, generator=gens(),
                           callback=infos.append)
    with torch.no_grad():
        ref = _conditioned_ddim_reference(model, x, y, w=w, t_start=t_start, skip=skip, eta=eta, generators=gens())
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    assert len(infos) == len(ddad.ddim_steps(t_start, skip)) and torch.equal(infos[-1]["x"], got)
    assert sorted(infos[0]) == ["denoised", "i", "score", "t", "x"] and infos[-1]["denoised"] is None
