import pytest
import torch

from scoreviz.nets import (
    PRESETS,
    ScoreModel,
    SPRUNet,
    build,
    count_parameters,
    load_official_spr,
)
from scoreviz.sde import SPRSDE, VESDE, VPSDE
from scoreviz.train import dsm_loss


def _official_spr_unet_param_count(cin=3, cout=3, emb=256):
    """Parameter count of the official SPR U-Net, counted layer by layer from its description (paper_facts.md)."""
    conv = lambda i, o, k=3: i * o * k * k + o
    gn = lambda c: 2 * c
    dconv = lambda i, o, m=None: conv(i, m or o) + gn(m or o) + conv(m or o, o) + gn(o)
    dense = lambda o: emb * o + o
    n = emb * emb + emb  # Linear after the Fourier projection (its W is a fixed buffer)
    n += dconv(cin, 64) + dense(64)
    for i, o in [(64, 128), (128, 256), (256, 512), (512, 512)]:
        n += dconv(i, o) + dense(o)
    for i, o in [(1024, 256), (512, 128), (256, 64), (128, 64)]:
        n += dconv(i, o, i // 2) + dense(o)
    return n + conv(64, cout, 1)


def test_spr_preset_matches_official_architecture():
    net = build("spr")
    assert count_parameters(net) == _official_spr_unet_param_count()
    assert net.embed[0].W.shape == (128,)  # Fourier features: embed_dim 256 = 2 x 128
    assert isinstance(net, SPRUNet)


def test_tiny_is_small_and_every_preset_builds():
    assert count_parameters(build("tiny")) < 1_000_000
    for name in PRESETS:
        assert count_parameters(build(name)) > 0


def test_unknown_preset_and_bad_option():
    with pytest.raises(ValueError, match="valid presets: mlp, tiny, spr"):
        build("unet9000")
    with pytest.raises(ValueError, match="bad option for preset 'tiny'"):
        build("tiny", widht=3)


@pytest.mark.parametrize("preset,shape", [("tiny", (2, 3, 32, 32)), ("tiny", (2, 1, 64, 64)),
                                          ("tiny_res", (2, 3, 64, 64)), ("mlp", (5, 2))])
def test_forward_shapes_and_features(preset, shape):
    net = build(preset, **({} if preset == "mlp" else {"in_channels": shape[1]}))
    x, t = torch.randn(shape), torch.rand(shape[0])
    out, feats = net(x, t, return_features=True)
    assert out.shape == x.shape and feats
    assert all(f.shape[0] == shape[0] for f in feats.values())
    assert torch.equal(net(x, t), out)


def test_input_size_check():
    with pytest.raises(ValueError, match="divisible by 8"):
        build("tiny")(torch.randn(1, 3, 30, 30), torch.rand(1))


def test_score_model_parameterisations():
    sde = SPRSDE()
    net = build("tiny", in_channels=1)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([0.3, 0.9])
    std = sde.marginal_std(t)[:, None, None, None]
    with torch.no_grad():
        out = net(x, t)
        assert torch.allclose(ScoreModel(net, sde, "std")(x, t), out / std, atol=1e-6)
        assert torch.allclose(ScoreModel(net, sde, "eps")(x, t), -out / std, atol=1e-6)
        # a scalar t broadcasts over the batch
        assert ScoreModel(net, sde)(x, 0.5).shape == x.shape
    assert set(ScoreModel(net, sde).features(x, t)) >= {"enc0", "dec0"}
    with pytest.raises(ValueError, match="'std' or 'eps'"):
        ScoreModel(net, sde, "x0")


# The paper profiles' networks, at paper resolution, one training step on one image (CPU).
PAPER_NETS = [("spr", SPRSDE(25.0), 3, 192, "std"), ("ncsnpp", VESDE(0.01, 348.0, N=2000), 3, 256, "std"),
              ("ddpmpp", VESDE(0.01, 50.0), 1, 32, "std"), ("ddad", VPSDE(), 3, 256, "eps"),
              ("ddad_s", VPSDE(), 3, 256, "eps")]


@pytest.mark.parametrize("preset,sde,ch,size,output", PAPER_NETS, ids=[p[0] for p in PAPER_NETS])
def test_paper_network_takes_one_training_step_at_paper_resolution(preset, sde, ch, size, output):
    torch.manual_seed(0)
    model = ScoreModel(build(preset, in_channels=ch), sde, output)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(1, ch, size, size) * 2 - 1
    loss = dsm_loss(model, x, generator=torch.Generator().manual_seed(0))
    loss.backward()
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    with torch.no_grad():
        s = model(x, torch.tensor([1e-3]))
    assert s.shape == x.shape and torch.isfinite(s).all()


def test_official_spr_checkpoint_loads_into_spr_preset(tmp_path, official_spr_state_dict):
    sd = official_spr_state_dict
    torch.save(sd, tmp_path / "bottle.pth")
    net = load_official_spr(tmp_path / "bottle.pth")
    assert count_parameters(net) == sum(v.numel() for k, v in sd.items() if k != "embed.0.W")
    assert torch.equal(net.ups[0][0].weight, sd["up1.conv.double_conv.0.weight"])
    assert torch.equal(net.enc_dense[4].weight, sd["dense_d4.dense.weight"])
    assert torch.equal(net.embed[0].W, sd["embed.0.W"])
    del sd["dense_u4.dense.bias"]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"missing \['dec_dense\.3\.bias'\]"):
        load_official_spr(tmp_path / "broken.pth")
    with pytest.raises(FileNotFoundError, match="no SPR checkpoint"):
        load_official_spr(tmp_path / "zipper.pth")
