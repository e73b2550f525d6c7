"""The method detectors: each equals its algorithm module on the same model and noise, and fits through the
one shared cached fit."""
import pytest
import torch

from scoreviz import configs, ddad, experiments, features, methods, scoredd, spr

TINY = {"channels": (8, 16), "groups": 4, "embed_dim": 16}
TRAIN = {"epochs": 1, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 100}
DDAD_KW = dict(net="tiny", net_kwargs=TINY, train=TRAIN, w=2.0, t_start=20, skip=5, blur_sigma=1.0,
               denoiser_layers=("enc0",), n_calibration=4, sde_kwargs={"beta_min": 0.1, "beta_max": 20.0, "N": 100})


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREVIZ_CACHE", str(tmp_path / "models"))


def _images(n, size=16, channels=1, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_spr_detector_equals_algorithm_1_and_postprocessing():
    train, test = _images(8), _images(3, seed=1)
    det = methods.SPR(net="tiny", net_kwargs=TINY, train=TRAIN, k=1e-2, n=2, kernel=3, out_size=24, batch_size=2)
    det.fit(train, seed=0)
    out = det.details(test, generator=torch.Generator().manual_seed(5))
    ref = spr.anomaly_map_spr(det.model, test, det.model.sde, k=1e-2, n=2, kernel=3, out_size=24, batch_size=2,
                              generator=torch.Generator().manual_seed(5))
    assert out["maps"].shape == (3, 24, 24) and out["raw"].shape == (3, 16, 16)
    assert torch.equal(out["maps"], ref)
    official = det.replace(resize="bilinear", padding="zeros")
    assert official.model is det.model
    assert torch.allclose(official.postprocess(out["raw"]), spr.postprocess(out["raw"], kernel=3, out_size=24,
                                                                             resize="bilinear", padding="zeros"))
    assert det.maps(test, generator=torch.Generator().manual_seed(6)).shape == (3, 24, 24)
    assert methods.SPR(k=1e-3).settings["k"] == 1e-3


def test_the_shared_fit_is_seeded_and_cached():
    train = _images(8)
    a = methods.SPR(net="tiny", net_kwargs=TINY, train=TRAIN).fit(train, seed=0)
    b = methods.SPR(net="tiny", net_kwargs=TINY, train=TRAIN).fit(train, seed=0)     # served from the cache
    c = methods.SPR(net="tiny", net_kwargs=TINY, train=TRAIN).fit(train, seed=1)
    pa, pb, pc = (torch.cat([p.flatten() for p in d.model.parameters()]) for d in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    assert a.history == b.history and len(a.history) == 1


@pytest.mark.parametrize("sde, sampler, method", [("vp", "flow", "t_scales"), ("ve", "sde", "t_scales"),
                                                  ("subvp", "flow", "no_t_scales"), ("vp", "flow", "recon_loss")])
def test_scoredd_detector_equals_anomaly_maps(sde, sampler, method):
    train, test = _images(8), _images(3, seed=1)
    kw = {"ve": {"sigma_min": 0.01, "sigma_max": None, "N": 50}}.get(sde, {"N": 50})
    det = methods.ScoreDD(net="tiny", net_kwargs=TINY, train=TRAIN, sde=sde, sde_kwargs=kw, sampler=sampler,
                          method=method, t_steps=(6, 4), r=1, layers=("enc0", "enc1"), batch_size=2).fit(train)
    assert det.ts == (6 / 50, 4 / 50)
    if sde == "ve":   # Song's rule: the largest distance between training images
        assert det.model.sde.sigma_max == round(scoredd.sigma_max_rule(train), 1)
    maps = det.maps(test, generator=torch.Generator().manual_seed(2))
    ref = scoredd.anomaly_maps(det.model, test, det.model.sde, det.ts, 1, ("enc0", "enc1"), method=method,
                               probability_flow=sampler == "flow", generator=torch.Generator().manual_seed(2),
                               batch_size=2)
    assert maps.shape == (3, 16, 16) and torch.equal(maps, ref)


def test_scoredd_table4_baselines_share_one_model():
    det = methods.ScoreDD(net="tiny", net_kwargs=TINY, train=TRAIN, sde_kwargs={"N": 50}, t_steps=(6, 4)).fit(_images(8))
    assert det.replace(method="recon_loss").model is det.model
    with pytest.raises(ValueError, match="t_scales"):
        det.replace(method="tscales")


def test_ddad_detector_maps_do_not_depend_on_the_batch():
    train, test = _images(8), _images(5, seed=1)
    kw = dict(net="tiny", net_kwargs=TINY, train=TRAIN, w=2.0, t_start=20, skip=5, blur_sigma=1.0,
              denoiser_layers=("enc0",), n_calibration=4, sde_kwargs={"beta_min": 0.1, "beta_max": 20.0, "N": 100})
    det = methods.DDAD(batch_size=5, **kw).fit(train)
    assert det.scale is not None and det.scale > 0
    g = torch.Generator().manual_seed(3)
    whole = det.details(test, generator=g)
    pieces = det.replace(batch_size=2).details(test, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(whole["maps"], pieces["maps"], atol=1e-5)
    assert set(whole) == {"x0", "d_p", "d_f", "maps"} and whole["x0"].shape == test.shape
    batchwise = det.replace(norm="batch", batch_size=2)
    assert not torch.allclose(batchwise.maps(test, generator=torch.Generator().manual_seed(3)), whole["maps"])
    with pytest.raises(ValueError, match="norm"):
        det.replace(norm="global")


def test_methods_run_through_the_experiments_layer():
    train = experiments.load_category("textures", "brick", size=16, seed=0)
    det = methods.SPR(net="tiny", net_kwargs=TINY, train=TRAIN, kernel=3, batch_size=16)
    result = experiments.run(det, train, dataset="textures", seed=0, device="cpu", pro=False)
    assert result.maps.shape == (len(train.test), 16, 16) and set(result.extras) == {"raw"}
    assert result.settings["k"] == 1e-3 and result.seconds["fit"] > 0


def test_ddad_calibration_uses_the_first_training_images():
    """fit() with norm 'train' sets scale = max D_f / max D_p over the first n_calibration training images, with
    their own seed (seed + 7919); other norms leave it unset, and norm 'train' without a scale raises."""
    train = _images(8)
    det = methods.DDAD(**DDAD_KW).fit(train, seed=0)
    d = det.distances(train[:4], seed=7919)
    assert det.scale == pytest.approx(float(d["d_f"].max() / d["d_p"].max()))
    assert det.calibrate(train[:4]) == det.scale                     # calibrate(seed=0) is what fit did
    per_image = methods.DDAD(norm="image", **DDAD_KW).fit(train, seed=0)
    assert per_image.scale is None and per_image.maps(train[:2]).shape == (2, 16, 16)
    with pytest.raises(ValueError, match="calibrate"):
        per_image.replace(norm="train").maps(train[:2])


def test_ddad_replace_keeps_the_fit_and_drops_only_a_stale_scale():
    train, test = _images(8), _images(3, seed=1)
    det = methods.DDAD(**DDAD_KW).fit(train, seed=0)
    for change in ({"v": 3.0}, {"norm": "batch"}, {"blur_sigma": 0.0}, {"batch_size": 1}, {"w": det.w}):
        new = det.replace(**change)
        assert new.scale == det.scale and new.model is det.model, change
    for change in ({"w": 0.0}, {"t_start": 10}, {"skip": 10}, {"eta": 0.0}, {"pool": 1}, {"feature_t": 0.01},
                   {"denoiser_layers": ("enc0", "enc1")}):
        new = det.replace(**change)
        assert new.scale is None and new.model is det.model, change
        with pytest.raises(ValueError, match="calibrate"):
            new.maps(test)
    assert det.scale is not None and det.w == 2.0                    # the original is untouched
    # a replaced setting takes effect: w, and the compared layers of the denoiser's features
    w0 = det.replace(w=0.0)
    w0.calibrate(train[:4])
    assert not torch.allclose(w0.distances(test)["x0"], det.distances(test)["x0"])
    two = det.replace(denoiser_layers=("enc0", "enc1"))
    assert two.compared == ("enc0", "enc1") and not torch.allclose(two.distances(test)["d_f"], det.distances(test)["d_f"])
    for change in ({"train": {**TRAIN, "epochs": 2}}, {"features": "wide_resnet50"}, {"fe_epochs": 1}, {"net": "ddad"}):
        with pytest.raises(ValueError, match="fit"):
            det.replace(**change)
    assert methods.DDAD(**DDAD_KW).replace(net="ddad").net == "ddad"   # before fit anything may change


def test_ddad_with_wide_resnet_and_domain_adaptation(tmp_path):
    """The paper profile's path at toy scale: the detector of the ddad settings, a Wide-ResNet-50-2 file
    (random weights), one epoch of domain adaptation, calibration, run through the experiments layer."""
    torch.manual_seed(0)
    weights = tmp_path / features.WEIGHT_FILES[50]
    torch.save(features.WideResNet(50).state_dict(), weights)
    cfg = configs.get("cpu", "ddad", size=16, feature_extractor="wide_resnet50", fe_epochs=1,
                      net_kwargs=TINY, train={"epochs": 1, "batch_size": 100},
                      da_batch_size={"default": 100}, test_batch_size={"default": 30}, n_calibration=4,
                      t_start=100, skip=50, backbone_input_size=32)
    category = experiments.load_category("textures", "brick", size=16, seed=0)
    det = cfg.detector("textures", "brick", weights=weights)
    result = experiments.run(det, category, dataset="textures", seed=0, device="cpu")
    assert result.maps.shape == (60, 16, 16) and result.extras["x0"].shape == (60, 1, 16, 16)
    assert set(result.metrics) == {"image_auroc", "pixel_auroc", "aupro"}
    assert len(det.da_history) == 1 and len(det.history) == 1
    assert det.compared == ("layer2", "layer3") and det.scale > 0
    assert isinstance(det.extractor, features.BackboneFeatures)
    d = det.distances(category.test.images[:2])
    assert torch.allclose(d["d_p"], ddad.pixel_distance(d["x0"], category.test.images[:2]))


def test_fit_settings_cannot_be_replaced_after_fit():
    det = methods.SPR(net="tiny", net_kwargs=TINY, train=TRAIN).fit(_images(8))
    with pytest.raises(ValueError, match="fit"):
        det.replace(train={**TRAIN, "epochs": 2})
    assert det.replace(train=dict(TRAIN), k=0.01).k == 0.01          # an unchanged value is fine


def test_scoredd_embedding_follows_the_sde_and_fits_are_reproducible(tmp_path, monkeypatch):
    """Score-DD App. B: ResUNet presets get Fourier time features for VE and positional ones for VP; one cache
    folder per SDE; the same seed in two empty caches gives identical weights whatever the global RNG state."""
    kw = dict(net="tiny_res", net_kwargs={"image_size": 8, "ch": 8, "ch_mult": (1, 2), "attn_res": ()}, train=TRAIN)
    x = _images(4, size=8)
    vp = methods.ScoreDD(sde="vp", sde_kwargs={"N": 100}, **kw).fit(x)
    ve = methods.ScoreDD(sde="ve", sde_kwargs={"sigma_min": 0.01, "sigma_max": 5.0, "N": 100}, **kw).fit(x)
    assert type(vp.model.net.embed[0]).__name__ == "PositionalEmbedding"
    assert type(ve.model.net.embed[0]).__name__ == "FourierEmbedding"
    assert not vp.model.training
    states = []
    for sub in ("a", "b"):
        monkeypatch.setenv("SCOREVIZ_CACHE", str(tmp_path / sub))
        torch.manual_seed(len(sub) + len(states))
        states.append(methods.ScoreDD(sde="vp", sde_kwargs={"N": 100}, **kw).fit(x, seed=3).model.state_dict())
        assert len(list((tmp_path / sub).iterdir())) == 1
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
