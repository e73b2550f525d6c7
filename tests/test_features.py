"""DDAD's feature extractors and domain adaptation: the Wide-ResNet backbone and torchvision's weight files (files
with random weights), weight-file discovery and its download hint, the denoiser's own features, and the fine-tuning."""
import math

import pytest
import torch

from scoreviz import configs, features
from scoreviz.features import WideResNet, load_wide_resnet
from scoreviz.nets import ScoreModel, build, count_parameters
from scoreviz.sde import VPSDE


# ---------------------------------------------------------------------------------------------- the backbone
def _torchvision_style_state_dict(depth):
    """Names and shapes of torchvision's wide_resnet{depth}_2, enumerated here independently of scoreviz."""
    sd = {}

    def bn(prefix, c):
        sd.update({f"{prefix}.weight": torch.rand(c), f"{prefix}.bias": torch.randn(c),
                   f"{prefix}.running_mean": torch.randn(c), f"{prefix}.running_var": torch.rand(c) + 0.5,
                   f"{prefix}.num_batches_tracked": torch.tensor(0)})

    sd["conv1.weight"] = torch.randn(64, 3, 7, 7) * 0.05
    bn("bn1", 64)
    inplanes = 64
    for li, (n, planes) in enumerate(zip({50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth], (64, 128, 256, 512)), 1):
        width = planes * 2
        for b in range(n):
            p = f"layer{li}.{b}"
            sd[f"{p}.conv1.weight"] = torch.randn(width, inplanes, 1, 1) * 0.05
            bn(f"{p}.bn1", width)
            sd[f"{p}.conv2.weight"] = torch.randn(width, width, 3, 3) * 0.02
            bn(f"{p}.bn2", width)
            sd[f"{p}.conv3.weight"] = torch.randn(planes * 4, width, 1, 1) * 0.05
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                sd[f"{p}.downsample.0.weight"] = torch.randn(planes * 4, inplanes, 1, 1) * 0.05
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 2048) * 0.01, torch.zeros(1000)
    return sd


def test_wide_resnet_loads_torchvision_weight_files(tmp_path):
    # torchvision documents 68,883,240 and 126,886,696 parameters for wide_resnet50_2 / 101_2
    assert count_parameters(WideResNet(50)) == 68_883_240
    assert count_parameters(WideResNet(101)) == 126_886_696
    sd = _torchvision_style_state_dict(50)
    torch.save(sd, tmp_path / "wrn50.pth")
    net = load_wide_resnet(tmp_path / "wrn50.pth", 50)
    assert torch.equal(net.layer3[5].conv2.weight, sd["layer3.5.conv2.weight"])
    feats = net(torch.randn(1, 3, 64, 64), layers=("layer2", "layer3"))
    assert feats["layer2"].shape == (1, 512, 8, 8) and feats["layer3"].shape == (1, 1024, 4, 4)
    # a DataParallel-wrapped file ('module.' prefixes) loads too
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "wrapped.pth")
    load_wide_resnet(tmp_path / "wrapped.pth", 50)


def test_wide_resnet_bad_files(tmp_path):
    sd = _torchvision_style_state_dict(50)
    with pytest.raises(FileNotFoundError, match="no Wide-ResNet weight file"):
        load_wide_resnet(tmp_path / "missing.pth")
    bad = dict(sd)
    del bad["layer2.0.conv1.weight"]
    bad["head.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"1 missing keys .*layer2\.0\.conv1\.weight.*1 unexpected keys .*head\.weight"):
        load_wide_resnet(tmp_path / "bad.pth")
    torch.save(sd, tmp_path / "wrn50.pth")
    with pytest.raises(ValueError, match="does not match wide_resnet101_2"):
        load_wide_resnet(tmp_path / "wrn50.pth", 101)
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable PyTorch weight file"):
        load_wide_resnet(tmp_path / "junk.pth")


# ---------------------------------------------------------------------------------------------- extractors
def _tiny_denoiser(seed=0):
    torch.manual_seed(seed)
    net = build("tiny", in_channels=1, channels=(8, 16), groups=4, embed_dim=16)
    return ScoreModel(net, VPSDE(), output="eps").eval()


@pytest.fixture(scope="module")
def wrn50_file(tmp_path_factory):
    """A Wide-ResNet-50-2 file in torchvision's format (its parameter names and shapes), random weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / features.WEIGHT_FILES[50]
    torch.save(WideResNet(50).state_dict(), path)
    return path


def test_backbone_loads_torchvision_file_and_missing_weights_are_explained(wrn50_file, tmp_path, monkeypatch):
    monkeypatch.delenv("SCOREVIZ_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fe = features.load_backbone(wrn50_file, 50, input_size=64)
    out = fe(torch.rand(2, 1, 32, 32) * 2 - 1)      # gray input, resized to 64
    assert [tuple(v.shape) for v in out.values()] == [(2, 256, 16, 16), (2, 512, 8, 8), (2, 1024, 4, 4)]
    # found through a folder, $SCOREVIZ_WEIGHTS and DATA_ROOT/weights
    assert features.resolve_weights(wrn50_file.parent, 50) == wrn50_file
    monkeypatch.setenv("SCOREVIZ_WEIGHTS", str(wrn50_file.parent))
    assert features.resolve_weights(None, 50) == wrn50_file
    monkeypatch.delenv("SCOREVIZ_WEIGHTS")
    assert features.resolve_weights(None, 50) is None
    (tmp_path / "data" / "weights").mkdir(parents=True)
    (tmp_path / "data" / "weights" / wrn50_file.name).symlink_to(wrn50_file)
    assert features.resolve_weights(None, 50, tmp_path / "data").name == wrn50_file.name
    # no file: a message that names the file to download and where to put it
    with pytest.raises(FileNotFoundError, match=r"wide_resnet101_2-32ee1156\.pth.*WEIGHTS"):
        features.backbone_weights(configs.get("paper", "ddad").feature_extractor, None, tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="download.pytorch.org"):
        features.load_backbone(tmp_path / "missing.pth", 50)
    with pytest.raises(FileNotFoundError, match="no wide_resnet101_2"):
        features.resolve_weights(tmp_path / "data", 101)               # a folder without the file
    with pytest.raises(ValueError, match="depth"):
        features.resolve_weights(None, 34)
    assert features.backbone_weights("denoiser") is None      # the denoiser's own features need no file
    assert features.backbone_weights("denoiser", wrn50_file) == ("wide_resnet50", wrn50_file)
    with pytest.raises(ValueError, match="feature_extractor"):
        features.backbone_weights("resnet18")
    # a file with missing and extra keys
    state = torch.load(wrn50_file, weights_only=True)
    state.pop("layer3.0.conv1.weight")
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="1 missing keys.*1 unexpected keys"):
        features.load_backbone(tmp_path / "bad.pth", 50)


def test_backbone_input_follows_imagenet_normalisation():
    """[-1, 1] images become (x + 1) / 2 standardised by ImageNet's mean and std; gray is repeated to RGB."""
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x, layers):
            seen.append(x)
            return {name: x for name in layers}

    fe = features.BackboneFeatures(Probe(), ("layer1",))
    gray = torch.full((1, 1, 4, 4), 0.5)
    fe(gray)
    expected = (torch.tensor([0.75, 0.75, 0.75]) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(seen[0][0, :, 0, 0], expected)
    with pytest.raises(ValueError, match="1- or 3-channel"):
        fe(torch.zeros(1, 2, 4, 4))


def test_denoiser_features_are_the_unets_own_maps():
    model = _tiny_denoiser()
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    own = features.DenoiserFeatures(model, ("enc0", "enc1"), t=1e-3)(x)
    with torch.no_grad():
        ref = model.features(x, torch.full((2,), 1e-3))
    assert list(own) == ["enc0", "enc1"] and all(torch.equal(own[k], ref[k]) for k in own)
    with pytest.raises(ValueError, match="no feature maps"):
        features.DenoiserFeatures(model, ("layer2",))(x)


def test_paper_denoiser_features_match_the_backbone_strides():
    """The paper profile's denoiser_layers are the 32x32 and 16x16 maps at 256 px, like the Wide-ResNet's
    layer2 and layer3 (the "no external knowledge" variant of notebook 09, section 8)."""
    cfg = configs.get("paper", "ddad")
    torch.manual_seed(0)
    model = ScoreModel(build(cfg.net, in_channels=3, image_size=cfg.size), VPSDE(**cfg.sde_kwargs), output="eps")
    with torch.no_grad():
        own = features.DenoiserFeatures(model.eval(), cfg.denoiser_layers)(torch.zeros(1, 3, 256, 256))
    assert [tuple(v.shape[-2:]) for v in own.values()] == [(32, 32), (16, 16)]


def test_domain_adaptation_fine_tunes_a_copy(wrn50_file):
    fe = features.load_backbone(wrn50_file, 50)
    model = _tiny_denoiser()
    images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    before = {k: v.clone() for k, v in fe.state_dict().items()}
    res = features.domain_adaptation(fe, model, images, epochs=1, batch_size=4, t_start=50, skip=25, seed=0)
    assert len(res.history) == 1 and math.isfinite(res.history[0])
    assert all(torch.equal(before[k], v) for k, v in fe.state_dict().items())            # input untouched
    assert all(torch.equal(before[k], v) for k, v in res.frozen.state_dict().items())     # frozen copy
    tuned = res.features.state_dict()
    assert not torch.equal(tuned["backbone.layer2.0.conv1.weight"], before["backbone.layer2.0.conv1.weight"])
    assert not torch.equal(tuned["backbone.layer1.0.bn1.running_mean"], before["backbone.layer1.0.bn1.running_mean"])
    assert not res.features.training
    frozen_bn = features.domain_adaptation(fe, model, images, epochs=1, batch_size=4, t_start=50, skip=25,
                                           batchnorm="frozen").features.state_dict()
    assert torch.equal(frozen_bn["backbone.layer1.0.bn1.running_mean"], before["backbone.layer1.0.bn1.running_mean"])
    untouched = features.domain_adaptation(fe, model, images, epochs=0, batch_size=4)
    assert untouched.history == [] and all(torch.equal(before[k], v) for k, v in untouched.features.state_dict().items())
    with pytest.raises(ValueError, match="batches of >= 2"):
        features.domain_adaptation(fe, model, images[:1], epochs=1)
    with pytest.warns(UserWarning, match="fewer than batch_size 16; one batch of"):   # a small category (smoke run)
        small = features.domain_adaptation(fe, model, images, epochs=1, batch_size=16, t_start=50, skip=25)
    assert len(small.history) == 1
    with pytest.raises(ValueError, match="batchnorm"):
        features.domain_adaptation(fe, model, images, epochs=1, batchnorm="eval")
