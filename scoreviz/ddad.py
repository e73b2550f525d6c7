"""DDAD (Mousakhan et al., arXiv 2305.15956): anomaly detection with conditioned denoising diffusion models.

A test image y is noised to DDPM step t_start and denoised with DDIM steps that are pulled toward y itself
(the conditioning, weight w), so normal patterns come back as they were while defects are replaced by
normal texture. The anomaly map compares the reconstruction x0 with y pixel-wise (D_p) and feature-wise
(D_f, 1 - cosine similarity of 3x3-mean-pooled backbone features); image score = max of the blurred map.
A "domain adaptation" step fine-tunes the ImageNet backbone on reconstructions of normal images.

Time convention (used everywhere here): DDPM step s in {1, ..., N} (1-indexed; s = 0 is the clean image)
has abar_s = sde.alphas_cumprod[s - 1] (abar_0 = 1) and is shown to the network as continuous time
t = s / N, where the VP SDE's marginal std matches sqrt(1 - abar_s) to 1.4e-3 (0.04 % at s = 250);
training draws t ~ U(1/N, 1], the continuum of the same steps. Images are (B, C, H, W) in [-1, 1],
maps (B, H, W).
"""
from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .maps import gaussian_blur, image_scores
from .nets import PRESETS, ResUNet, ScoreModel, WideResNet, build, load_wide_resnet
from .sde import VPSDE, bcast

__all__ = ["make_denoiser", "step_time", "alpha_bar", "ddim_steps", "reconstruct", "pixel_distance",
           "feature_distance", "combine_maps", "center_crop", "BackboneFeatures", "DenoiserFeatures", "WEIGHT_FILES",
           "weights_hint", "resolve_weights", "backbone_weights", "load_backbone", "domain_adaptation", "DAResult",
           "Detector", "w_ablation", "category_settings", "run_category", "CategoryRun"]

#: torchvision's ImageNet weight files for the Wide-ResNets (IMAGENET1K_V1)
WEIGHT_FILES = {50: "wide_resnet50_2-95faca4d.pth", 101: "wide_resnet101_2-32ee1156.pth"}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------- denoiser
def make_denoiser(preset: str = "ddad", in_channels: int = 3, image_size: int | None = None,
                  sde_kwargs: Mapping | None = None, **net_kwargs) -> ScoreModel:
    """DDAD's denoiser: an eps-predicting network on the DDPM schedule (VPSDE(0.1, 20, N=1000) = beta 1e-4..0.02)."""
    if preset in PRESETS and PRESETS[preset][0] is ResUNet and image_size is not None:
        net_kwargs["image_size"] = image_size
    net = build(preset, in_channels=in_channels, **net_kwargs)
    return ScoreModel(net, VPSDE(**{"beta_min": 0.1, "beta_max": 20.0, "N": 1000, **(sde_kwargs or {})}),
                      output="eps")


def _check_vp(sde) -> None:
    if not hasattr(sde, "alphas_cumprod"):
        raise ValueError(f"DDAD needs a DDPM (VPSDE) denoiser with alphas_cumprod, got {type(sde).__name__}")


def step_time(step, sde) -> torch.Tensor:
    """Continuous time t = s / N of DDPM step s (1-indexed); float or tensor in, float tensor out."""
    return torch.as_tensor(step, dtype=torch.float64) / sde.N


def alpha_bar(sde, steps) -> torch.Tensor:
    """abar_s = prod_{i <= s} (1 - beta_i) for 1-indexed steps s (abar_0 = 1), float64 of steps' shape."""
    _check_vp(sde)
    s = torch.as_tensor(steps, dtype=torch.long)
    if bool(((s < 0) | (s > sde.N)).any()):
        raise ValueError(f"DDPM steps must lie in 0..{sde.N}, got {s.tolist()}")
    table = torch.cat([torch.ones(1, dtype=torch.float64), sde.alphas_cumprod])
    return table[s]


def ddim_steps(t_start: int = 250, skip: int = 25) -> list[int]:
    """DDAD's DDIM schedule: [t_start, t_start - skip, ..., 0]; t_start / skip network calls (10 by default)."""
    t_start, skip = int(t_start), int(skip)
    if t_start < 1 or skip < 1:
        raise ValueError(f"t_start and skip must be positive integers, got {t_start}, {skip}")
    steps = list(range(t_start, 0, -skip))
    return steps + [0]


def _randn(shape, generator, device, dtype) -> torch.Tensor:
    """Gaussian noise; `generator` may be one generator or one per sample (batch-independent draws)."""
    if isinstance(generator, Sequence):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
        return torch.stack([torch.randn(shape[1:], generator=g, device=device, dtype=dtype) for g in generator])
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


@torch.no_grad()
def reconstruct(model: ScoreModel, x: torch.Tensor, y: torch.Tensor | None = None, *, w: float = 3.0,
                t_start: int = 250, skip: int = 25, eta: float = 1.0, generator=None, callback=None) -> torch.Tensor:
    """DDAD's conditioned denoising process: x (B, C, H, W) -> reconstruction x0, shaped like x.

    x is noised to step t_start, x_T = sqrt(abar) x + sqrt(1 - abar) z, then for each step s -> s' of
    ddim_steps(t_start, skip): eps = eps_theta(x_s, s); the target y (default: x itself) is noised along the
    same predicted noise, y_s = sqrt(abar_s) y + sqrt(1 - abar_s) eps; the guided noise is
    eps^ = eps - w sqrt(1 - abar_s) (y_s - x_s); and DDIM with stochasticity eta steps to s' using eps^.
    Equivalently the clean-image estimate moves toward y: x0^ = x0(eps) + w (1 - abar_s) (y - x0(eps)).
    generator: one torch.Generator, or one per image so that each image's draws do not depend on its batch.
    callback(info) after each step with keys i, step, t, x (state at s'), x0 (estimate), eps (eps^).
    """
    if x.ndim != 4:
        raise ValueError(f"x must be images (B, C, H, W), got shape {tuple(x.shape)}")
    y = x if y is None else y
    if y.shape != x.shape:
        raise ValueError(f"the target y must be shaped like x {tuple(x.shape)}, got {tuple(y.shape)}")
    sde = model.sde
    steps = ddim_steps(t_start, skip)
    if steps[0] > sde.N:
        raise ValueError(f"t_start = {t_start} is beyond the schedule's N = {sde.N} steps")
    abar = alpha_bar(sde, steps).tolist()
    dev, dt = x.device, x.dtype
    a = abar[0]
    xt = math.sqrt(a) * x + math.sqrt(1 - a) * _randn(x.shape, generator, dev, dt)
    for i, (s, a, a_next) in enumerate(zip(steps[:-1], abar[:-1], abar[1:])):
        t = torch.full((x.shape[0],), s / sde.N, device=dev, dtype=dt)
        eps = model.eps(xt, t).to(dt)
        y_t = math.sqrt(a) * y + math.sqrt(1 - a) * eps
        eps_hat = eps - w * math.sqrt(1 - a) * (y_t - xt)
        x0 = (xt - math.sqrt(1 - a) * eps_hat) / math.sqrt(a)
        c1 = eta * math.sqrt(max((1 - a / a_next) * (1 - a_next) / (1 - a), 0.0))
        c2 = math.sqrt(max(1 - a_next - c1**2, 0.0))
        xt = math.sqrt(a_next) * x0 + c2 * eps_hat
        if c1 > 0:
            xt = xt + c1 * _randn(x.shape, generator, dev, dt)
        if callback is not None:
            callback({"i": i, "step": s, "t": t, "x": xt, "x0": x0, "eps": eps_hat})
    return xt


# ---------------------------------------------------------------------------------------------- distances
def pixel_distance(x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """D_p: channel mean of |x0 - y|, (B, C, H, W) x2 -> (B, H, W)."""
    if x0.shape != y.shape or x0.ndim != 4:
        raise ValueError(f"x0 and y must be images of one shape (B, C, H, W), got {tuple(x0.shape)}, {tuple(y.shape)}")
    return (x0 - y).abs().mean(1)


def feature_distance(feats_a: Mapping, feats_b: Mapping, size, layers: Sequence[str], pool: int = 3) -> torch.Tensor:
    """D_f: sum over layers of 1 - cos(pool(a), pool(b)) over channels, upsampled (bilinear) to size -> (B, H, W).

    pool: k x k mean pooling with stride 1 and zero padding (PatchCore's local neighbourhood, k = 3).
    """
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    out = None
    for name in layers:
        if name not in feats_a or name not in feats_b:
            raise ValueError(f"feature layer {name!r} not produced by the feature extractor; it gives {sorted(feats_a)}")
        fa, fb = feats_a[name].float(), feats_b[name].float()
        if pool > 1:
            fa = F.avg_pool2d(fa, pool, 1, pool // 2, count_include_pad=True)
            fb = F.avg_pool2d(fb, pool, 1, pool // 2, count_include_pad=True)
        d = 1 - F.cosine_similarity(fa, fb, dim=1)
        d = F.interpolate(d[:, None], size=(h, w), mode="bilinear", align_corners=True)[:, 0]
        out = d if out is None else out + d
    if out is None:
        raise ValueError("layers must name at least one feature layer")
    return out


def combine_maps(d_p: torch.Tensor, d_f: torch.Tensor, *, v: float = 1.0, norm: str = "train",
                 scale: float | None = None, batch_size: int | None = None, blur_sigma: float = 4.0) -> torch.Tensor:
    """DDAD's anomaly map D_f + v * s * D_p, Gaussian-blurred (sigma in pixels); (N, H, W) x2 -> (N, H, W).

    s puts D_p on D_f's scale, s = max D_f / max D_p, with the maxima taken over
    norm='train': a fixed set of normal images (`scale`, from Detector.calibrate);
    norm='image': each image on its own;
    norm='batch': each run of batch_size consecutive images (the official code's test batches, so a
    map depends on which other images share its batch).
    """
    if d_p.shape != d_f.shape or d_p.ndim != 3:
        raise ValueError(f"d_p and d_f must be maps of one shape (N, H, W), got {tuple(d_p.shape)}, {tuple(d_f.shape)}")
    if norm == "train":
        if scale is None:
            raise ValueError("norm='train' needs the scale from normal images: call Detector.calibrate(train_images) "
                             "first, pass scale=..., or use norm='image'")
        s = torch.full((d_p.shape[0],), float(scale), dtype=d_p.dtype, device=d_p.device)
    elif norm == "image":
        s = d_f.flatten(1).amax(1) / d_p.flatten(1).amax(1).clamp_min(1e-12)
    elif norm == "batch":
        n = d_p.shape[0]
        b = n if batch_size is None else int(batch_size)
        if b < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        s = torch.empty(n, dtype=d_p.dtype, device=d_p.device)
        for i in range(0, n, b):
            s[i:i + b] = d_f[i:i + b].max() / d_p[i:i + b].max().clamp_min(1e-12)
    else:
        raise ValueError(f"unknown norm {norm!r}; valid: 'train', 'image', 'batch' (official code)")
    return gaussian_blur(d_f + v * bcast(s, d_p) * d_p, blur_sigma)


def center_crop(a: torch.Tensor, size: int | None) -> torch.Tensor:
    """Central size x size crop of maps/masks (N, H, W) (the official code evaluates a 224 crop of 256); None: no crop."""
    if size is None:
        return a
    h, w = a.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"crop {size} is larger than the maps ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return a[..., top:top + size, left:left + size]


# ---------------------------------------------------------------------------------------------- features
class BackboneFeatures(nn.Module):
    """An ImageNet backbone on [-1, 1] images: gray -> RGB, (x + 1) / 2, ImageNet mean/std; forward -> {layer: map}.

    input_size: resize (bilinear) images to this size first (small images: the layers' strides are 4, 8, 16).
    """

    def __init__(self, backbone: WideResNet, layers: Sequence[str] = ("layer1", "layer2", "layer3"),
                 input_size: int | None = None):
        super().__init__()
        self.backbone, self.layers, self.input_size = backbone, tuple(layers), input_size
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> dict:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[1] != 3:
            raise ValueError(f"the backbone takes 1- or 3-channel images, got {x.shape[1]} channels")
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.backbone(x, layers=self.layers)


class DenoiserFeatures(nn.Module):
    """The "no external knowledge" extractor: the denoiser U-Net's own feature maps of the clean image at time t."""

    def __init__(self, model: ScoreModel, layers: Sequence[str], t: float = 1e-3):
        super().__init__()
        self.model, self.layers, self.t = model, tuple(layers), float(t)

    def forward(self, x: torch.Tensor) -> dict:
        feats = self.model.features(x, torch.full((x.shape[0],), self.t, device=x.device, dtype=x.dtype))
        missing = [k for k in self.layers if k not in feats]
        if missing:
            raise ValueError(f"the denoiser has no feature maps {missing}; it gives {sorted(feats)}")
        return {k: feats[k] for k in self.layers}


def resolve_weights(weights=None, depth: int = 101, data_root=None) -> Path | None:
    """Find a Wide-ResNet-{depth}-2 ImageNet weight file: the given path, else $SCOREVIZ_WEIGHTS (file or folder),
    else torch's hub cache (~/.cache/torch/hub/checkpoints), else DATA_ROOT/weights; None if there is none."""
    if depth not in WEIGHT_FILES:
        raise ValueError(f"Wide-ResNet depth must be one of {tuple(WEIGHT_FILES)}, got {depth}")
    if weights is not None:
        p = Path(weights).expanduser()
        if p.is_dir():
            hits = sorted(p.glob(f"wide_resnet{depth}_2*.pth"))
            if not hits:
                raise FileNotFoundError(f"no wide_resnet{depth}_2*.pth in {p}; {weights_hint(depth)}")
            return hits[0]
        if not p.is_file():
            raise FileNotFoundError(f"no Wide-ResNet weight file at {p}; {weights_hint(depth)}")
        return p
    places = []
    if os.environ.get("SCOREVIZ_WEIGHTS"):
        places.append(Path(os.environ["SCOREVIZ_WEIGHTS"]).expanduser())
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    places.append(hub)
    if data_root is not None:
        places.append(Path(data_root) / "weights")
    for p in places:
        if p.is_file():
            return p
        if p.is_dir():
            hits = sorted(p.glob(f"wide_resnet{depth}_2*.pth"))
            if hits:
                return hits[0]
    return None


def weights_hint(depth: int = 101) -> str:
    """What to download for the Wide-ResNet-{depth}-2 backbone and where to put it."""
    name = WEIGHT_FILES[depth]
    return (f"DDAD's feature extractor needs torchvision's ImageNet weights for wide_resnet{depth}_2: download "
            f"https://download.pytorch.org/models/{name} (or run torchvision.models.wide_resnet{depth}_2("
            f"weights='IMAGENET1K_V1') once on a machine with internet), put the file in ~/.cache/torch/hub/"
            f"checkpoints/ or DATA_ROOT/weights/ (or set SCOREVIZ_WEIGHTS) or pass its path as WEIGHTS; "
            "without it use feature_extractor='denoiser' (no external knowledge)")


def load_backbone(weights, depth: int = 101, layers: Sequence[str] = ("layer1", "layer2", "layer3"),
                  data_root=None, input_size: int | None = None) -> BackboneFeatures:
    """BackboneFeatures around a Wide-ResNet-{50,101}-2 loaded from a torchvision ImageNet weight file."""
    path = resolve_weights(weights, depth, data_root)
    if path is None:
        raise FileNotFoundError(f"no ImageNet weight file found for wide_resnet{depth}_2. {weights_hint(depth)}")
    return BackboneFeatures(load_wide_resnet(path, depth), layers, input_size).eval()


def backbone_weights(cfg: Mapping, weights=None, data_root=None) -> tuple[str, Path] | None:
    """(feature_extractor, weight file) for a config: its Wide-ResNet's file, raising the download hint when the
    config needs one and none is found; for feature_extractor='denoiser', any Wide-ResNet file found (101, then
    50) for a comparison, or None."""
    fe = cfg["feature_extractor"]
    if fe != "denoiser":
        depth = {"wide_resnet50": 50, "wide_resnet101": 101}.get(fe)
        if depth is None:
            raise ValueError(f"feature_extractor must be 'denoiser', 'wide_resnet50' or 'wide_resnet101', got {fe!r}")
        path = resolve_weights(weights, depth, data_root)
        if path is None:
            raise FileNotFoundError(f"no ImageNet weight file found for wide_resnet{depth}_2. {weights_hint(depth)}")
        return fe, path
    if weights is not None and Path(weights).expanduser().is_file():
        depth = 101 if "101" in Path(weights).name else 50
        return f"wide_resnet{depth}", Path(weights).expanduser()
    for depth in (101, 50):
        try:
            path = resolve_weights(weights, depth, data_root)
        except FileNotFoundError:
            path = None
        if path is not None:
            return f"wide_resnet{depth}", path
    return None


# ---------------------------------------------------------------------------------------------- domain adaptation
@dataclass
class DAResult:
    features: BackboneFeatures   # the fine-tuned extractor (eval mode)
    frozen: BackboneFeatures     # the untouched copy
    history: list = field(default_factory=list)  # mean loss per epoch


def _flat_cos_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)).mean()


def domain_adaptation(features: BackboneFeatures, model: ScoreModel, images, *, epochs: int, w: float = 3.0,
                      lam: float = 0.1, batch_size: int = 16, lr: float = 1e-4, t_start: int = 250, skip: int = 25,
                      eta: float = 1.0, layers: Sequence[str] = ("layer1", "layer2", "layer3"),
                      batchnorm: str = "train", seed: int = 0, device="cpu", progress: bool = False) -> DAResult:
    """DDAD's domain adaptation: fine-tune the backbone so that reconstructions and their targets look alike.

    Each batch of normal images is split in half: targets y and inputs x. x is reconstructed conditioned
    on y (weight w, the same denoising as at test time), and the loss per layer l is
    (1 - cos(F(x0), F(y))) + lam (1 - cos(F(y), F_frozen(y))) + lam (1 - cos(F(x0), F_frozen(x0))),
    cosine over each sample's whole flattened feature map, F the tuned and F_frozen the original backbone;
    summed over layers, AdamW(lr). batchnorm='train' updates BatchNorm statistics as the official code
    does, 'frozen' keeps ImageNet's. epochs = 0 returns copies of the untouched backbone.
    """
    from tqdm import tqdm

    if batchnorm not in ("train", "frozen"):
        raise ValueError(f"batchnorm must be 'train' or 'frozen', got {batchnorm!r}")
    x_all = getattr(images, "images", images)
    if len(x_all) < 2 or batch_size < 2:
        raise ValueError(f"domain adaptation needs batches of >= 2 images (targets + inputs), got {len(x_all)} "
                         f"images and batch_size {batch_size}")
    dev = torch.device(device)
    frozen = copy.deepcopy(features).to(dev).eval().requires_grad_(False)
    tuned = copy.deepcopy(features).to(dev)
    model = model.to(dev).eval()
    opt = torch.optim.AdamW(tuned.parameters(), lr=lr)
    gen = torch.Generator(device=dev).manual_seed(seed)
    perm_gen = torch.Generator().manual_seed(seed + 1)
    history = []
    for _ in tqdm(range(int(epochs)), desc="domain adaptation", disable=not progress, leave=False):
        tuned.train()
        if batchnorm == "frozen":
            for m in tuned.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        losses = []
        perm = torch.randperm(len(x_all), generator=perm_gen)
        for i in range(0, len(perm) - batch_size + 1, batch_size):   # drop_last, as the official loader
            batch = x_all[perm[i:i + batch_size]].to(dev)
            half = batch.shape[0] // 2
            target, inp = batch[:half], batch[half:2 * half]
            x0 = reconstruct(model, inp, target, w=w, t_start=t_start, skip=skip, eta=eta, generator=gen)
            f_x0, f_y = tuned(x0), tuned(target)
            with torch.no_grad():
                g_x0, g_y = frozen(x0), frozen(target)
            loss = sum(_flat_cos_distance(f_x0[k], f_y[k]) + lam * _flat_cos_distance(f_y[k], g_y[k])
                       + lam * _flat_cos_distance(f_x0[k], g_x0[k]) for k in layers)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if not losses:
            raise ValueError(f"no full batch of {batch_size} in {len(x_all)} images; lower batch_size")
        history.append(sum(losses) / len(losses))
    return DAResult(tuned.eval().requires_grad_(False), frozen, history)


# ---------------------------------------------------------------------------------------------- detector
class Detector:
    """DDAD detection with fixed settings: reconstruct (conditioned DDIM), distances, normalise, blur, max.

    features: a module x -> {layer: (B, C_l, h_l, w_l)} (BackboneFeatures or DenoiserFeatures); layers: those
    compared in D_f (DDAD: 'layer2', 'layer3'). Noise is drawn per image from seed and the image's index,
    so with norm 'train' or 'image' an image's map does not depend on the batch it is processed in.
    """

    def __init__(self, model: ScoreModel, features: nn.Module, *, w: float = 3.0, v: float = 1.0,
                 layers: Sequence[str] = ("layer2", "layer3"), t_start: int = 250, skip: int = 25, eta: float = 1.0,
                 pool: int = 3, blur_sigma: float = 4.0, norm: str = "train", scale: float | None = None):
        _check_vp(model.sde)
        self.model, self.features = model.eval(), features.eval()
        self.w, self.v, self.layers, self.t_start, self.skip, self.eta = w, v, tuple(layers), t_start, skip, eta
        self.pool, self.blur_sigma, self.norm, self.scale = pool, blur_sigma, norm, scale

    def _device(self):
        return next(self.model.parameters()).device

    def replace(self, **changes) -> "Detector":
        """A copy with some settings changed (w, v, norm, ...), sharing model and features; scale is reset
        unless given (a new w or v needs a new calibration)."""
        keys = ("w", "v", "layers", "t_start", "skip", "eta", "pool", "blur_sigma", "norm")
        bad = sorted(set(changes) - set(keys) - {"scale", "features"})
        if bad:
            raise ValueError(f"unknown Detector setting(s) {bad}; valid: {keys + ('scale', 'features')}")
        kw = {k: getattr(self, k) for k in keys}
        kw.update({k: v for k, v in changes.items() if k in keys})
        return Detector(self.model, changes.get("features", self.features), **kw, scale=changes.get("scale"))

    def _generators(self, seed: int, start: int, n: int, device):
        return [torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + start + j) for j in range(n)]

    @torch.no_grad()
    def distances(self, images, *, batch_size: int = 16, seed: int = 0, w: float | None = None) -> dict:
        """Reconstructions and both distance maps of images (N, C, H, W): {'x0', 'd_p', 'd_f'} on the CPU."""
        x_all = getattr(images, "images", images)
        dev = self._device()
        w = self.w if w is None else w
        out = {"x0": [], "d_p": [], "d_f": []}
        for i in range(0, len(x_all), batch_size):
            y = x_all[i:i + batch_size].to(dev)
            x0 = reconstruct(self.model, y, w=w, t_start=self.t_start, skip=self.skip, eta=self.eta,
                             generator=self._generators(seed, i, len(y), dev))
            fa, fb = self.features(x0), self.features(y)
            out["x0"].append(x0.cpu())
            out["d_p"].append(pixel_distance(x0, y).cpu())
            out["d_f"].append(feature_distance(fa, fb, y.shape[-2:], self.layers, self.pool).cpu())
        return {k: torch.cat(v) for k, v in out.items()}

    def calibrate(self, images, *, batch_size: int = 16, seed: int = 0) -> float:
        """Fix the D_p scale from normal images: scale = max D_f / max D_p over them (norm='train'); returns it."""
        d = self.distances(images, batch_size=batch_size, seed=seed + 7919)
        self.scale = float(d["d_f"].max() / d["d_p"].max().clamp_min(1e-12))
        return self.scale

    def combine(self, d_p, d_f, *, norm: str | None = None, batch_size: int | None = None) -> torch.Tensor:
        """combine_maps with this detector's v, blur and normalisation (or another norm)."""
        return combine_maps(d_p, d_f, v=self.v, norm=norm or self.norm, scale=self.scale, batch_size=batch_size,
                            blur_sigma=self.blur_sigma)

    def __call__(self, images, *, batch_size: int = 16, seed: int = 0) -> torch.Tensor:
        """Anomaly maps (N, H, W) of images; image scores are maps.image_scores(maps)."""
        d = self.distances(images, batch_size=batch_size, seed=seed)
        return self.combine(d["d_p"], d["d_f"], batch_size=batch_size)


def w_ablation(detector: Detector, train_images, test, ws: Sequence[float], *, n_calibration: int = 16,
               batch_size: int = 16, seed: int = 0, crop: int | None = None, pro: bool = True):
    """Metrics of one detector for each conditioning weight w (recalibrated per w): a DataFrame with columns
    w, image_auroc, pixel_auroc, aupro, and the mean |x0 - y| of normal and of anomalous test images."""
    import pandas as pd

    from . import metrics

    rows = []
    labels = test.labels.bool()
    for w in ws:
        det = detector.replace(w=float(w))
        if det.norm == "train":
            det.calibrate(train_images[:n_calibration], batch_size=batch_size, seed=seed)
        d = det.distances(test, batch_size=batch_size, seed=seed)
        maps = center_crop(det.combine(d["d_p"], d["d_f"], batch_size=batch_size), crop)
        m = metrics.evaluate(maps, center_crop(test.masks, crop), test.labels, pro=pro)
        dist = (d["x0"] - test.images).abs().mean((1, 2, 3))
        rows.append({"w": float(w), **m, "dist_normal": dist[~labels].mean().item(),
                     "dist_anomalous": dist[labels].mean().item()})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- one category
def category_settings(cfg: Mapping, dataset: str, category: str) -> dict:
    """Per-category settings: w, epochs, fe_epochs from DDAD's README tables (cfg.paper_settings and a dataset it
    covers), else cfg's defaults; v, lam, da_batch_size, test_batch_size per dataset (cfg dicts, key 'default')."""
    from .paper import DDAD_SETTINGS

    def per_dataset(value):
        if isinstance(value, Mapping):
            by_cat = value.get(f"{dataset}/{category}")
            return by_cat if by_cat is not None else value.get(dataset, value["default"])
        return value

    s = {"w": cfg["w"], "epochs": cfg["train"]["epochs"], "fe_epochs": cfg["fe_epochs"]}
    if cfg.get("paper_settings") and dataset in DDAD_SETTINGS:
        if category not in DDAD_SETTINGS[dataset]:
            raise ValueError(f"no DDAD settings for {dataset} category {category!r}; known: {sorted(DDAD_SETTINGS[dataset])}")
        s.update(DDAD_SETTINGS[dataset][category])
    s.update({k: per_dataset(cfg[k]) for k in ("v", "lam", "da_batch_size", "test_batch_size")})
    return s


@dataclass
class CategoryRun:
    dataset: str
    category: str
    settings: dict
    model: ScoreModel
    detector: Detector
    train: object           # ImageSet
    test: object            # ImageSet
    x0: torch.Tensor        # reconstructions (N, C, H, W)
    d_p: torch.Tensor       # (N, H, W)
    d_f: torch.Tensor       # (N, H, W)
    maps: torch.Tensor      # (N, H, W)
    scores: torch.Tensor    # (N,)
    metrics: dict
    train_history: list = field(default_factory=list)
    da_history: list = field(default_factory=list)


def run_category(cfg: Mapping, dataset: str, category: str, *, data_root=None, device="auto", weights=None,
                 seed: int = 0, progress: bool = False, cache_root=None, pro: bool = True) -> CategoryRun:
    """DDAD end to end on one category: load, train the denoiser (train_cached), build the feature extractor
    (ImageNet Wide-ResNet + domain adaptation, or the denoiser's own features), calibrate, detect, evaluate.

    Datasets other than the embedded ones are read from data_root/<dataset>/<category>; weights: the
    Wide-ResNet file (see resolve_weights; also looked for in data_root/weights).
    """
    from . import data, metrics
    from .train import TrainConfig, resolve_device, train_cached

    dev = resolve_device(device)
    st = category_settings(cfg, dataset, category)
    size = cfg["size"]
    if dataset in ("textures", "mnist"):
        kw = {"size": size}
    else:
        if data_root is None:
            raise ValueError(f"dataset {dataset!r} is read from DATA_ROOT/{dataset}/<category>; pass data_root")
        kw = {"root": Path(data_root) / dataset, "size": size}
    train_set = data.load(dataset, category, "train", **kw)
    test_set = data.load(dataset, category, "test", **kw)
    with torch.random.fork_rng(devices=[]):     # the initial weights follow the seed, the global RNG is untouched
        torch.manual_seed(seed)
        model = make_denoiser(cfg["net"], in_channels=train_set.images.shape[1], image_size=size,
                              sde_kwargs=cfg["sde_kwargs"], **cfg["net_kwargs"])
    tcfg = TrainConfig(**{**cfg["train"], "epochs": st["epochs"]}, seed=seed)
    res = train_cached(model, train_set, tcfg, tag=f"ddad-{dataset}-{category}", root=cache_root, device=dev,
                       progress=progress)
    model = res.ema.to(dev).eval()
    da_history = []
    if cfg["feature_extractor"] == "denoiser":
        feats = DenoiserFeatures(model, cfg["denoiser_layers"], cfg["feature_t"])
        layers = cfg["denoiser_layers"]
    else:
        depth = {"wide_resnet50": 50, "wide_resnet101": 101}.get(cfg["feature_extractor"])
        if depth is None:
            raise ValueError(f"feature_extractor must be 'denoiser', 'wide_resnet50' or 'wide_resnet101', "
                             f"got {cfg['feature_extractor']!r}")
        feats = load_backbone(weights, depth, cfg["da"]["layers"], data_root=data_root,
                              input_size=cfg["backbone_input_size"]).to(dev)
        if st["fe_epochs"] > 0:
            da = domain_adaptation(feats, model, train_set, epochs=st["fe_epochs"], w=cfg["da"]["w"], lam=st["lam"],
                                   batch_size=st["da_batch_size"], lr=cfg["da"]["lr"], t_start=cfg["t_start"],
                                   skip=cfg["skip"], eta=cfg["eta"], layers=cfg["da"]["layers"],
                                   batchnorm=cfg["da"]["batchnorm"], seed=seed, device=dev, progress=progress)
            feats, da_history = da.features, da.history
        layers = cfg["layers"]
    det = Detector(model, feats.to(dev), w=st["w"], v=st["v"], layers=layers, t_start=cfg["t_start"],
                   skip=cfg["skip"], eta=cfg["eta"], pool=cfg["pool"], blur_sigma=cfg["blur_sigma"], norm=cfg["norm"])
    if cfg["norm"] == "train":
        n_cal = min(cfg["n_calibration"], len(train_set))
        det.calibrate(train_set.images[:n_cal], batch_size=st["test_batch_size"], seed=seed)
    d = det.distances(test_set, batch_size=st["test_batch_size"], seed=seed)
    maps = det.combine(d["d_p"], d["d_f"], batch_size=st["test_batch_size"])
    crop = cfg["eval_crop"]
    scores = image_scores(center_crop(maps, crop))
    m = metrics.evaluate(center_crop(maps, crop), center_crop(test_set.masks, crop), test_set.labels,
                         image_scores=scores, pro=pro)
    return CategoryRun(dataset, category, st, model, det, train_set, test_set, d["x0"], d["d_p"], d["d_f"], maps,
                       scores, m, list(res.history), da_history)
