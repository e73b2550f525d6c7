"""Time-conditioned score networks and the wrapper that turns their output into a score.

Networks map (x, t) -> raw output shaped like x, and with `return_features=True` also a dict of
intermediate feature maps (Score-DD and DDAD compare them). `ScoreModel` wraps a network once into
the score_fn(x, t) contract. Families:
- `MLPScoreNet`: 2-D toys.
- `SPRUNet`: the official SPR U-Net (double 3x3 conv + GroupNorm + Swish per level, max-pool down,
  bilinear up, Gaussian Fourier time embedding added per block); `tiny` is a small copy of it.
- `ResUNet`: NCSN++ / DDPM++ / ADM style (BigGAN residual up/down blocks, self-attention at chosen
  resolutions, Fourier or sinusoidal time embedding).
`load_official_spr` loads SPR's released weights into the `spr` preset; `NetworkCounter` counts network calls.
The ImageNet Wide-ResNet backbone of DDAD's features lives in scoreviz.features.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from .sde import SDE, bcast
from .weightfile import read_state_dict

__all__ = ["MLPScoreNet", "SPRUNet", "ResUNet", "ScoreModel", "PRESETS", "build", "count_parameters",
           "load_official_spr", "NetworkCounter"]


class FourierEmbedding(nn.Module):
    """Gaussian Fourier features [sin 2 pi W t, cos 2 pi W t] with fixed W ~ N(0, scale^2)."""

    def __init__(self, dim: int, scale: float = 16.0):
        super().__init__()
        self.register_buffer("W", torch.randn(dim // 2) * scale)

    def forward(self, t):
        proj = t[:, None] * self.W[None] * 2 * math.pi
        return torch.cat([proj.sin(), proj.cos()], 1)


class PositionalEmbedding(nn.Module):
    """Transformer sinusoidal embedding of the DDPM step index 1000 t."""

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        self.dim, self.max_period = dim, max_period

    def forward(self, t):
        half = self.dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device) / half)
        args = 1000.0 * t[:, None].float() * freqs[None]
        return torch.cat([args.sin(), args.cos()], 1)


def _time_mlp(kind: str, dim: int, out: int, scale: float) -> nn.Sequential:
    emb = FourierEmbedding(dim, scale) if kind == "fourier" else PositionalEmbedding(dim)
    return nn.Sequential(emb, nn.Linear(dim, out), nn.SiLU(), nn.Linear(out, out))


# ----------------------------------------------------------------------------------------------
class MLPScoreNet(nn.Module):
    """MLP for D-dimensional points: [x, emb(t)] -> hidden layers (SiLU) -> D outputs."""

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, embed_dim: int = 64, fourier_scale: float = 16.0):
        super().__init__()
        self.embed = _time_mlp("fourier", embed_dim, embed_dim, fourier_scale)
        layers, width = [], dim + embed_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x, t, return_features: bool = False):
        h = self.body(torch.cat([x, self.embed(t)], 1))
        out = self.out(h)
        return (out, {"hidden": h}) if return_features else out


# ----------------------------------------------------------------------------------------------
def _double_conv(cin: int, cout: int, groups: int, mid: int | None = None) -> nn.Sequential:
    mid = mid or cout
    return nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.GroupNorm(groups, mid), nn.SiLU(),
                         nn.Conv2d(mid, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.SiLU())


class SPRUNet(nn.Module):
    """The SPR U-Net: channels (64, 128, 256, 512, 512) in the paper; one time projection added per block.

    Input (B, C, H, W) with H, W divisible by 2^(len(channels) - 1); features 'enc{i}' and 'dec{i}'.
    """

    def __init__(self, in_channels: int = 3, out_channels: int | None = None, channels=(64, 128, 256, 512, 512),
                 groups: int = 32, embed_dim: int = 256, fourier_scale: float = 30.0):
        super().__init__()
        c = list(channels)
        self.embed = nn.Sequential(FourierEmbedding(embed_dim, fourier_scale), nn.Linear(embed_dim, embed_dim))
        self.inc = _double_conv(in_channels, c[0], groups)
        self.downs = nn.ModuleList(_double_conv(c[i], c[i + 1], groups) for i in range(len(c) - 1))
        ups, cur = [], c[-1]
        for i in range(len(c) - 2, -1, -1):
            cin, cout = c[i] + cur, c[max(i - 1, 0)]
            ups.append(_double_conv(cin, cout, groups, mid=cin // 2))
            cur = cout
        self.ups = nn.ModuleList(ups)
        self.enc_dense = nn.ModuleList(nn.Linear(embed_dim, ch) for ch in c)
        self.dec_dense = nn.ModuleList(nn.Linear(embed_dim, m[-2].num_channels) for m in ups)
        self.outc = nn.Conv2d(c[0], out_channels or in_channels, 1)
        self.multiple = 2 ** (len(c) - 1)

    def forward(self, x, t, return_features: bool = False):
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"SPRUNet needs H and W divisible by {self.multiple}, got {tuple(x.shape[-2:])}")
        emb = F.silu(self.embed(t))
        feats, skips = {}, []
        h = self.inc(x) + self.enc_dense[0](emb)[..., None, None]
        for i, down in enumerate(self.downs):
            skips.append(h)
            feats[f"enc{i}"] = h
            h = down(F.max_pool2d(h, 2)) + self.enc_dense[i + 1](emb)[..., None, None]
        feats[f"enc{len(self.downs)}"] = h
        for i, up in enumerate(self.ups):
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True)
            h = up(torch.cat([skips.pop(), h], 1)) + self.dec_dense[i](emb)[..., None, None]
            feats[f"dec{i}"] = h
        out = self.outc(h)
        return (out, feats) if return_features else out


_SPR_KEY_RULES = [  # official SPR U-Net parameter names -> SPRUNet names
    (r"^inc\.double_conv\.", lambda m: "inc."),
    (r"^down(\d+)\.maxpool_conv\.1\.double_conv\.", lambda m: f"downs.{int(m[1]) - 1}."),
    (r"^up(\d+)\.conv\.double_conv\.", lambda m: f"ups.{int(m[1]) - 1}."),
    (r"^dense_in\.dense\.", lambda m: "enc_dense.0."),
    (r"^dense_d(\d+)\.dense\.", lambda m: f"enc_dense.{m[1]}."),
    (r"^dense_u(\d+)\.dense\.", lambda m: f"dec_dense.{int(m[1]) - 1}."),
    (r"^outc\.conv\.", lambda m: "outc."),
]


def load_official_spr(path, in_channels: int = 3) -> SPRUNet:
    """Load a released SPR checkpoint (<category>.pth, EMA weights, official names) into the `spr` preset.

    Wrap it as ScoreModel(net, SPRSDE(25.0), output="std"): the official network divides by std(t) itself,
    which ScoreModel does here.
    """
    state = read_state_dict(path, "SPR checkpoint", "expected <category>.pth from the authors' release")
    renamed = {}
    for key, value in state.items():
        for pattern, repl in _SPR_KEY_RULES:
            key = re.sub(pattern, repl, key)
        renamed[key] = value
    net = build("spr", in_channels=in_channels)
    want = net.state_dict()
    missing, extra = sorted(set(want) - set(renamed)), sorted(set(renamed) - set(want))
    bad = [k for k in want if k in renamed and renamed[k].shape != want[k].shape]
    if missing or extra or bad:
        raise ValueError(f"{path} does not match the official SPR U-Net (64-128-256-512-512, embed 256): "
                         f"missing {missing[:3]}, unexpected {extra[:3]}, wrong shape {bad[:3]}")
    net.load_state_dict(renamed)
    return net.eval()


# ----------------------------------------------------------------------------------------------
def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, c // 4), c)


class ResBlock(nn.Module):
    """BigGAN-style residual block with time conditioning; resample in {None, 'up', 'down'}."""

    def __init__(self, cin: int, cout: int, temb: int, dropout: float = 0.0, resample: str | None = None,
                 skip_rescale: bool = True):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.drop, self.conv2 = _norm(cout), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.resample, self.skip_rescale = resample, skip_rescale

    def _resample(self, h):
        if self.resample == "up":
            return F.interpolate(h, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(h, 2)
        return h

    def forward(self, x, emb):
        h = self._resample(F.silu(self.norm1(x)))
        h = self.conv1(h) + self.temb(emb)[..., None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        out = self.skip(self._resample(x)) + h
        return out / math.sqrt(2.0) if self.skip_rescale else out


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual."""

    def __init__(self, c: int, heads: int = 1, skip_rescale: bool = True):
        super().__init__()
        self.norm, self.qkv, self.proj = _norm(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.heads, self.skip_rescale = heads, skip_rescale

    def forward(self, x, emb=None):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v).transpose(-1, -2).reshape(B, C, H, W)
        out = x + self.proj(h)
        return out / math.sqrt(2.0) if self.skip_rescale else out


class ResUNet(nn.Module):
    """NCSN++ / DDPM++ / ADM-style U-Net: ch * ch_mult channels per level, attention where the resolution is in attn_res.

    Features at each level's own resolution: 'down{i}' (encoder level i, before its downsampling), 'mid',
    'up{i}' (decoder level i before its upsampling, i = 0 is the coarsest).
    """

    def __init__(self, in_channels: int = 3, out_channels: int | None = None, image_size: int = 256, ch: int = 128,
                 ch_mult=(1, 2, 2, 2), num_res_blocks: int = 2, attn_res=(16,), heads: int = 1, dropout: float = 0.0,
                 embedding: str = "fourier", fourier_scale: float = 16.0, skip_rescale: bool = True):
        super().__init__()
        if embedding not in ("fourier", "positional"):
            raise ValueError(f"embedding must be 'fourier' or 'positional', got {embedding!r}")
        temb = 4 * ch
        self.embed = _time_mlp(embedding, ch, temb, fourier_scale)
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        blk = dict(temb=temb, dropout=dropout, skip_rescale=skip_rescale)
        self.down, chans, cur, res = nn.ModuleList(), [ch], ch, image_size
        for lvl, m in enumerate(ch_mult):
            layers = nn.ModuleList()
            for _ in range(num_res_blocks):
                layers.append(ResBlock(cur, ch * m, **blk))
                cur = ch * m
                if res in attn_res:
                    layers.append(Attention(cur, heads, skip_rescale))
                chans.append(cur)
            if lvl < len(ch_mult) - 1:
                layers.append(ResBlock(cur, cur, resample="down", **blk))
                chans.append(cur)
                res //= 2
            self.down.append(layers)
        self.mid = nn.ModuleList([ResBlock(cur, cur, **blk), Attention(cur, heads, skip_rescale), ResBlock(cur, cur, **blk)])
        self.up = nn.ModuleList()
        for lvl, m in reversed(list(enumerate(ch_mult))):
            layers = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                layers.append(ResBlock(cur + chans.pop(), ch * m, **blk))
                cur = ch * m
                if res in attn_res:
                    layers.append(Attention(cur, heads, skip_rescale))
            if lvl > 0:
                layers.append(ResBlock(cur, cur, resample="up", **blk))
                res *= 2
            self.up.append(layers)
        self.norm_out, self.conv_out = _norm(cur), nn.Conv2d(cur, out_channels or in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.multiple = 2 ** (len(ch_mult) - 1)

    def forward(self, x, t, return_features: bool = False):
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"ResUNet needs H and W divisible by {self.multiple}, got {tuple(x.shape[-2:])}")
        emb = self.embed(t)
        h = self.conv_in(x)
        skips, feats = [h], {}
        for lvl, layers in enumerate(self.down):
            for layer in layers:
                if getattr(layer, "resample", None) == "down":
                    feats[f"down{lvl}"] = h
                h = layer(h, emb)
                if isinstance(layer, Attention):
                    skips[-1] = h
                else:
                    skips.append(h)
            feats.setdefault(f"down{lvl}", h)
        for layer in self.mid:
            h = layer(h, emb)
        feats["mid"] = h
        for lvl, layers in enumerate(self.up):
            for layer in layers:
                if isinstance(layer, ResBlock) and layer.resample == "up":
                    feats[f"up{lvl}"] = h
                if isinstance(layer, ResBlock) and layer.resample is None:
                    h = layer(torch.cat([h, skips.pop()], 1), emb)
                else:
                    h = layer(h, emb)
            feats.setdefault(f"up{lvl}", h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return (out, feats) if return_features else out


# ----------------------------------------------------------------------------------------------
class ScoreModel(nn.Module):
    """Wraps a network into score_fn(x, t) -> grad log p_t(x) for an SDE.

    output='std': the network predicts std(t) * score (SPR, NCSN++ 'scale by sigma'), score = out / std;
    output='eps': the network predicts the noise z of x_t = a x0 + std z (DDPM), score = -out / std.
    """

    def __init__(self, net: nn.Module, sde: SDE, output: str = "std"):
        super().__init__()
        if output not in ("std", "eps"):
            raise ValueError(f"output must be 'std' or 'eps', got {output!r}")
        self.net, self.sde, self.output = net, sde, output

    def eps(self, x, t):
        """Predicted noise z (= -std * score), shaped like x."""
        out = self.net(x, t)
        return -out if self.output == "std" else out

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        return -self.eps(x, t) / bcast(self.sde.marginal_std(t), x)

    def features(self, x, t) -> dict:
        """The network's intermediate feature maps at (x, t)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        return self.net(x, t, return_features=True)[1]


PRESETS = {
    "mlp": (MLPScoreNet, {"dim": 2, "hidden": 128, "depth": 3}),
    "tiny": (SPRUNet, {"channels": (32, 64, 96, 128), "groups": 8, "embed_dim": 64}),
    "spr": (SPRUNet, {"channels": (64, 128, 256, 512, 512), "groups": 32, "embed_dim": 256, "fourier_scale": 30.0}),
    "tiny_res": (ResUNet, {"image_size": 64, "ch": 32, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "attn_res": (16,)}),
    "ncsnpp": (ResUNet, {"image_size": 256, "ch": 128, "ch_mult": (1, 1, 2, 2, 2, 2, 2), "num_res_blocks": 2,
                         "attn_res": (16,), "embedding": "fourier"}),
    "ddpmpp": (ResUNet, {"image_size": 32, "ch": 128, "ch_mult": (1, 2, 2, 2), "num_res_blocks": 2, "attn_res": (16,),
                         "embedding": "positional", "dropout": 0.1}),
    "ddad": (ResUNet, {"image_size": 256, "ch": 64, "ch_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2,
                       "attn_res": (32, 16, 8), "heads": 4, "embedding": "positional", "skip_rescale": False}),
    "ddad_s": (ResUNet, {"image_size": 256, "ch": 32, "ch_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2,
                         "attn_res": (32, 16, 8), "heads": 4, "embedding": "positional", "skip_rescale": False}),
}


def build(preset: str, **overrides) -> nn.Module:
    """Build a network from a preset name, overriding any keyword (in_channels, image_size, ...)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown network preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    cls, kwargs = PRESETS[preset]
    try:
        net = cls(**{**kwargs, **overrides})
    except TypeError as e:
        raise ValueError(f"bad option for preset {preset!r} ({cls.__name__}): {e}") from None
    net.spec = {"preset": preset, **overrides}
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


class NetworkCounter:
    """Counts forward passes of a network through a forward hook, as a context manager.

    calls: batched forward passes; evaluations: samples pushed through the network (the sum of the
    batch sizes), the unit of Score-DD's cost analysis (Sec. 5.5); per_image(n) = evaluations / n.
    `model` is a ScoreModel (its .net is hooked) or any nn.Module.
    """

    def __init__(self, model: torch.nn.Module):
        self.module = getattr(model, "net", model)
        self.calls, self.evaluations, self._handle = 0, 0, None

    def _hook(self, module, args, output):
        self.calls += 1
        self.evaluations += int(args[0].shape[0])

    def reset(self) -> "NetworkCounter":
        self.calls, self.evaluations = 0, 0
        return self

    def per_image(self, n_images: int) -> float:
        return self.evaluations / n_images

    def __enter__(self) -> "NetworkCounter":
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        self._handle = None
