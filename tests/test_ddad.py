"""DDAD: schedule and time convention, conditioned DDIM against an exact denoiser, distances, normalisation,
the Wide-ResNet path (torchvision-format file with random weights) with domain adaptation, and the paper
profile's networks at paper resolution."""
import math

import pytest
import torch
import torch.nn as nn

from scoreviz import configs, ddad
from scoreviz.nets import ScoreModel, WideResNet, count_parameters
from scoreviz.sde import VPSDE
from scoreviz.train import TrainConfig, dsm_loss


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
    assert len(infos) == 10 and infos[0]["step"] == 250
    expected = x_star + 1.5 * (1 - a) * (y - x_star)
    assert torch.allclose(infos[0]["x0"], expected, atol=1e-4)


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
    assert ddad.center_crop(torch.zeros(2, 256, 256), 224).shape == (2, 224, 224)
    assert torch.equal(ddad.center_crop(torch.arange(16.).view(1, 4, 4), 2), torch.tensor([[[5., 6.], [9., 10.]]]))


def _tiny_denoiser(seed=0):
    torch.manual_seed(seed)
    return ddad.make_denoiser("tiny", in_channels=1, channels=(8, 16), groups=4, embed_dim=16).eval()


def test_detector_maps_do_not_depend_on_the_batch():
    model = _tiny_denoiser()
    x = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    det = ddad.Detector(model, ddad.DenoiserFeatures(model, ("enc0", "enc1")), w=1.0, layers=("enc0", "enc1"),
                        t_start=100, skip=25, blur_sigma=1.0)
    with pytest.raises(ValueError, match="calibrate"):
        det(x)
    scale = det.calibrate(x[:3], batch_size=2)
    assert scale > 0
    m1, m5 = det(x, batch_size=1), det(x, batch_size=5)
    assert m1.shape == (5, 16, 16) and torch.allclose(m1, m5, atol=1e-5)
    d1, d5 = det.distances(x, batch_size=1), det.distances(x, batch_size=5)
    assert torch.allclose(d1["x0"], d5["x0"], atol=1e-5)
    official = det.replace(norm="batch")
    assert official.scale is None and official.w == 1.0
    assert not torch.allclose(official(x, batch_size=1), official(x, batch_size=5))
    with pytest.raises(ValueError, match="unknown Detector setting"):
        det.replace(lamda=1)
    with pytest.raises(ValueError, match="no feature maps"):
        ddad.DenoiserFeatures(model, ("layer2",))(x)


# ------------------------------------------------------------------------------------------------ Wide-ResNet path
@pytest.fixture(scope="module")
def wrn50_file(tmp_path_factory):
    """A Wide-ResNet-50-2 file in torchvision's format (its parameter names and shapes), random weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / ddad.WEIGHT_FILES[50]
    torch.save(WideResNet(50).state_dict(), path)
    return path


def test_backbone_loads_torchvision_file_and_missing_weights_are_explained(wrn50_file, tmp_path, monkeypatch):
    monkeypatch.delenv("SCOREVIZ_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fe = ddad.load_backbone(wrn50_file, 50, input_size=64)
    out = fe(torch.rand(2, 1, 32, 32) * 2 - 1)      # gray input, resized to 64
    assert [tuple(v.shape) for v in out.values()] == [(2, 256, 16, 16), (2, 512, 8, 8), (2, 1024, 4, 4)]
    # found through a folder, $SCOREVIZ_WEIGHTS and DATA_ROOT/weights
    assert ddad.resolve_weights(wrn50_file.parent, 50) == wrn50_file
    monkeypatch.setenv("SCOREVIZ_WEIGHTS", str(wrn50_file.parent))
    assert ddad.resolve_weights(None, 50) == wrn50_file
    monkeypatch.delenv("SCOREVIZ_WEIGHTS")
    assert ddad.resolve_weights(None, 50) is None
    (tmp_path / "data" / "weights").mkdir(parents=True)
    (tmp_path / "data" / "weights" / wrn50_file.name).symlink_to(wrn50_file)
    assert ddad.resolve_weights(None, 50, tmp_path / "data").name == wrn50_file.name
    # no file: a message that names the file to download and where to put it
    paper = configs.get("paper", "ddad")
    with pytest.raises(FileNotFoundError, match=r"wide_resnet101_2-32ee1156\.pth.*WEIGHTS"):
        ddad.backbone_weights(paper, None, tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="download.pytorch.org"):
        ddad.load_backbone(tmp_path / "missing.pth", 50)
    assert ddad.backbone_weights(configs.get("cpu", "ddad")) is None      # the cpu profile needs none
    assert ddad.backbone_weights(configs.get("cpu", "ddad"), wrn50_file) == ("wide_resnet50", wrn50_file)
    # a file with missing and extra keys
    state = torch.load(wrn50_file, weights_only=True)
    state.pop("layer3.0.conv1.weight")
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="1 missing keys.*1 unexpected keys"):
        ddad.load_backbone(tmp_path / "bad.pth", 50)


def test_domain_adaptation_fine_tunes_a_copy(wrn50_file):
    fe = ddad.load_backbone(wrn50_file, 50)
    model = _tiny_denoiser()
    images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    before = {k: v.clone() for k, v in fe.state_dict().items()}
    res = ddad.domain_adaptation(fe, model, images, epochs=1, batch_size=4, t_start=50, skip=25, seed=0)
    assert len(res.history) == 1 and math.isfinite(res.history[0])
    assert all(torch.equal(before[k], v) for k, v in fe.state_dict().items())            # input untouched
    assert all(torch.equal(before[k], v) for k, v in res.frozen.state_dict().items())     # frozen copy
    tuned = res.features.state_dict()
    assert not torch.equal(tuned["backbone.layer2.0.conv1.weight"], before["backbone.layer2.0.conv1.weight"])
    assert not torch.equal(tuned["backbone.layer1.0.bn1.running_mean"], before["backbone.layer1.0.bn1.running_mean"])
    assert not res.features.training
    frozen_bn = ddad.domain_adaptation(fe, model, images, epochs=1, batch_size=4, t_start=50, skip=25,
                                       batchnorm="frozen").features.state_dict()
    assert torch.equal(frozen_bn["backbone.layer1.0.bn1.running_mean"], before["backbone.layer1.0.bn1.running_mean"])
    with pytest.raises(ValueError, match="batches of >= 2"):
        ddad.domain_adaptation(fe, model, images[:1], epochs=1)


def test_category_settings_follow_the_readme():
    paper = configs.get("paper", "ddad")
    s = ddad.category_settings(paper, "mvtec", "carpet")
    assert (s["w"], s["epochs"], s["fe_epochs"], s["v"], s["lam"], s["test_batch_size"]) == (0, 2500, 0, 1.0, 0.1, 16)
    s = ddad.category_settings(paper, "visa", "pcb1")
    assert (s["w"], s["fe_epochs"], s["v"], s["lam"], s["da_batch_size"], s["test_batch_size"]) == (9, 8, 7.0, 0.01, 16, 32)
    assert ddad.category_settings(paper, "visa", "cashew")["v"] == 1.0
    cpu = ddad.category_settings(configs.get("cpu", "ddad"), "textures", "brick")
    assert cpu["w"] == 1.0 and cpu["fe_epochs"] == 0
    with pytest.raises(ValueError, match="no DDAD settings"):
        ddad.category_settings(paper, "mvtec", "bagel")


def test_run_category_with_wide_resnet_and_domain_adaptation(wrn50_file, tmp_path):
    """The paper profile's code path (ImageNet backbone + domain adaptation + calibration + PRO), at toy scale."""
    cfg = configs.get("cpu", "ddad", size=16, feature_extractor="wide_resnet50", fe_epochs=1,
                      net_kwargs={"channels": (8, 16), "groups": 4, "embed_dim": 16},
                      train={**configs.get("cpu", "ddad").train, "epochs": 1, "batch_size": 100},
                      da_batch_size={"default": 100}, test_batch_size={"default": 30}, n_calibration=4,
                      t_start=100, skip=50, backbone_input_size=32)
    run = ddad.run_category(cfg, "textures", "brick", weights=wrn50_file, seed=0, device="cpu", cache_root=tmp_path)
    assert run.maps.shape == (60, 16, 16) and run.x0.shape == (60, 1, 16, 16)
    assert set(run.metrics) == {"image_auroc", "pixel_auroc", "aupro"}
    assert all(0 <= v <= 1 for v in run.metrics.values())
    assert len(run.da_history) == 1 and len(run.train_history) == 1
    assert run.detector.layers == ("layer2", "layer3") and run.detector.scale > 0
    table = ddad.w_ablation(run.detector, run.train.images, run.test, (0.0, 2.0), n_calibration=4, batch_size=30)
    assert list(table["w"]) == [0.0, 2.0] and (table["dist_normal"].diff().dropna() < 0).all()


# ------------------------------------------------------------------------------------------------ paper resolution
@pytest.mark.parametrize("preset,net_kwargs", [("ddad", {}), ("ddad_s", {"dropout": 0.3, "heads": 2})])
def test_paper_profile_networks_train_and_detect_at_256(preset, net_kwargs, wrn50_file):
    """The paper profile's denoiser + Wide-ResNet-50-2: one training step and one detection (10 DDIM steps,
    features, maps) at 256 px on one image, on the CPU."""
    cfg = configs.get("paper", "ddad")
    torch.manual_seed(0)
    model = ddad.make_denoiser(preset, in_channels=3, image_size=cfg.size, sde_kwargs=cfg.sde_kwargs, **net_kwargs)
    tc = TrainConfig(**{**cfg.train, "epochs": 1})
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loss = dsm_loss(model, x, t_min=tc.t_min, reduce=tc.loss_reduce, generator=torch.Generator().manual_seed(0))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    if preset == "ddad_s":
        assert count_parameters(model) < count_parameters(ddad.make_denoiser("ddad")) / 3
        return  # the detection below does not depend on the denoiser's size
    model.eval()
    with torch.no_grad():   # the "no external knowledge" features of the paper profile (section 8 of notebook 09)
        own = ddad.DenoiserFeatures(model, cfg.denoiser_layers)(x)
    assert [tuple(v.shape[-2:]) for v in own.values()] == [(32, 32), (16, 16)]
    det = ddad.Detector(model, ddad.load_backbone(wrn50_file, 50), w=3.0, v=1.0, layers=cfg.layers,
                        t_start=cfg.t_start, skip=cfg.skip, blur_sigma=cfg.blur_sigma, norm="image")
    calls = []
    model.net.register_forward_hook(lambda *a: calls.append(1))
    maps = det(x, batch_size=1)
    assert len(calls) == 10 and maps.shape == (1, 256, 256) and torch.isfinite(maps).all()


def test_plot_table_heatmap_draws_into_given_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from scoreviz import paper, plots

    fig, ax = plt.subplots()
    table = paper.table("ddad", "mvtec")
    table.loc["carpet", "pro"] = float("nan")
    out = plots.plot_table_heatmap(table, ax=ax, percent=True, title="README")
    texts = [t.get_text() for t in ax.texts]
    assert out is ax and "99.3" in texts and ax.get_title() == "README"
    assert len(texts) == table.size - 1                    # the NaN cell stays blank
    assert plots.plot_table_heatmap(pd.DataFrame({"a": [0.5, 0.75]}, index=["x", "y"])).texts[1].get_text() == "0.750"
    plt.close("all")
