"""DDAD's feature extractors and domain adaptation: what D_f compares, and how the backbone is fine-tuned.

Two extractors map images (B, C, H, W) in [-1, 1] to {layer: feature map (B, C_l, h_l, w_l)}:
`BackboneFeatures`, an ImageNet Wide-ResNet-{50,101}-2 (the paper's choice: external knowledge), loaded from
torchvision's weight file, which `resolve_weights` finds on disk (nothing is downloaded); and
`DenoiserFeatures`, the denoiser U-Net's own feature maps of the clean image (no external knowledge).
The backbone is `WideResNet`, the ImageNet Wide-ResNet-50-2 / 101-2 with torchvision's parameter names so
the standard weight files load (`load_wide_resnet`). `domain_adaptation` fine-tunes a backbone on the
denoiser's conditioned reconstructions (ddad.reconstruct) of normal images, DDAD's "domain adaptation" step.
"""
from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from . import ddad
from .nets import ScoreModel
from .weightfile import read_state_dict

__all__ = ["WideResNet", "load_wide_resnet", "BackboneFeatures", "DenoiserFeatures", "WEIGHT_FILES", "DEPTHS",
           "resolve_weights", "weights_hint", "load_backbone", "backbone_weights", "domain_adaptation", "DAResult"]

#: torchvision's ImageNet weight files for the Wide-ResNets (IMAGENET1K_V1)
WEIGHT_FILES = {50: "wide_resnet50_2-95faca4d.pth", 101: "wide_resnet101_2-32ee1156.pth"}
#: feature-extractor names (DDAD's `features` setting, a config's `feature_extractor`) -> Wide-ResNet depth
DEPTHS = {"wide_resnet50": 50, "wide_resnet101": 101}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------- backbone
class _Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 bottleneck with BatchNorm, as in torchvision's ResNet v1.5."""

    def __init__(self, cin: int, width: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class WideResNet(nn.Module):
    """Wide-ResNet-{50,101}-2 (bottleneck width x2). forward(x) -> {'layer1': ..., 'layer4': ...} on ImageNet-normalised x."""

    DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}

    def __init__(self, depth: int = 50):
        super().__init__()
        if depth not in self.DEPTHS:
            raise ValueError(f"Wide-ResNet depth must be one of {tuple(self.DEPTHS)}, got {depth}")
        self.depth = depth
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        cin = 64
        for i, (n, planes) in enumerate(zip(self.DEPTHS[depth], (64, 128, 256, 512))):
            blocks = []
            for j in range(n):
                blocks.append(_Bottleneck(cin, planes * 2, planes * 4, 2 if (j == 0 and i > 0) else 1))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(2048, 1000)

    def forward(self, x, layers=("layer1", "layer2", "layer3")) -> dict:
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        out, last = {}, max(int(name[-1]) for name in layers)
        for i in range(1, last + 1):
            h = getattr(self, f"layer{i}")(h)
            if f"layer{i}" in layers:
                out[f"layer{i}"] = h
        return out


def load_wide_resnet(path, depth: int = 50) -> WideResNet:
    """Build WideResNet(depth) and load an ImageNet weight file in torchvision's format (e.g. wide_resnet50_2-*.pth)."""
    hint = (f"expected torchvision's ImageNet weights for wide_resnet{depth}_2 (a .pth state dict); download them "
            f"on a machine with internet (torchvision.models.wide_resnet{depth}_2(weights='IMAGENET1K_V1') saves one "
            "under ~/.cache/torch/hub/checkpoints) and pass its path")
    state = read_state_dict(path, "Wide-ResNet weight file", hint)
    net = WideResNet(depth)
    want = net.state_dict()
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(want[k].shape)}" for k in want if k in state
           and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or extra or bad:
        parts = [f"{len(missing)} missing keys (e.g. {missing[:3]})" if missing else "",
                 f"{len(extra)} unexpected keys (e.g. {extra[:3]})" if extra else "",
                 f"{len(bad)} shape mismatches (e.g. {bad[:2]})" if bad else ""]
        raise ValueError(f"{path} does not match wide_resnet{depth}_2: " + "; ".join(p for p in parts if p) + f". {hint}")
    net.load_state_dict(state)
    return net.eval()


# ---------------------------------------------------------------------------------------------- extractors
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


def backbone_weights(fe: str, weights=None, data_root=None) -> tuple[str, Path] | None:
    """(feature extractor, weight file) for a feature extractor ('denoiser', 'wide_resnet50', 'wide_resnet101'):
    its Wide-ResNet's file, raising the download hint when none is found; for 'denoiser', any Wide-ResNet file
    found (101, then 50) for a comparison, or None."""
    if fe != "denoiser":
        depth = DEPTHS.get(fe)
        if depth is None:
            raise ValueError(f"feature_extractor must be 'denoiser', {' or '.join(map(repr, DEPTHS))}, got {fe!r}")
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
    """What domain_adaptation returns: the tuned extractor, the frozen original and the loss per epoch."""

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
    does, 'frozen' keeps ImageNet's. epochs = 0 returns copies of the untouched backbone. Batches are full
    (drop_last, as the official loader); a category with fewer images than batch_size makes one batch of all
    of them (with a warning) where the official code would skip the adaptation.
    """
    if batchnorm not in ("train", "frozen"):
        raise ValueError(f"batchnorm must be 'train' or 'frozen', got {batchnorm!r}")
    x_all = getattr(images, "images", images)
    if len(x_all) < 2 or batch_size < 2:
        raise ValueError(f"domain adaptation needs batches of >= 2 images (targets + inputs), got {len(x_all)} "
                         f"images and batch_size {batch_size}")
    if batch_size > len(x_all):
        warnings.warn(f"domain adaptation: {len(x_all)} training images, fewer than batch_size {batch_size}; "
                      f"one batch of {len(x_all)} per epoch", stacklevel=2)
        batch_size = len(x_all)
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
            x0 = ddad.reconstruct(model, inp, target, w=w, t_start=t_start, skip=skip, eta=eta, generator=gen)
            f_x0, f_y = tuned(x0), tuned(target)
            with torch.no_grad():
                g_x0, g_y = frozen(x0), frozen(target)
            loss = sum(_flat_cos_distance(f_x0[k], f_y[k]) + lam * _flat_cos_distance(f_y[k], g_y[k])
                       + lam * _flat_cos_distance(f_x0[k], g_x0[k]) for k in layers)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    return DAResult(tuned.eval().requires_grad_(False), frozen, history)

