"""The three papers' methods as detectors (the protocol of detectors.py): SPR, Score-DD and DDAD.

Each class holds settings only and calls its algorithm module (`spr`, `scoredd`, `ddad`) for the
equations; the score model comes from the one shared, seeded, cached fit (train.fit_score_model).
`details(images, generator=...)` returns the maps together with the method's intermediate results
(SPR: the raw restoration error; DDAD: reconstructions and both distances), so a notebook can show them
without computing anything twice.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from . import ddad, scoredd, spr
from .detectors import Detector, register
from .features import DEPTHS, DenoiserFeatures, domain_adaptation, load_backbone
from .nets import PRESETS, ResUNet, ScoreModel, load_official_spr
from .sde import SPRSDE, VESDE, VPSDE, get_sde
from .train import TrainConfig, fit_score_model, resolve_device

__all__ = ["SPR", "ScoreDD", "DDAD"]


class _ScoreMethod(Detector):
    """Shared by the methods: training settings (a TrainConfig; a dict of its fields is converted), the device,
    the score model and maps = details()['maps']."""

    def _check(self):
        if isinstance(self.train, Mapping):
            self.train = TrainConfig(**self.train)
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a train.TrainConfig or a dict of its fields, got {type(self.train).__name__}")

    def maps(self, images, *, generator=None):
        return self.details(images, generator=generator)["maps"]

    def _generator(self, generator):
        return generator if generator is not None else torch.Generator(device=self.device).manual_seed(0)


def _one_of(value, valid, what):
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(map(str, valid))}")


@register
@dataclass(kw_only=True)
class SPR(_ScoreMethod):
    """SPR (Algorithm 1): restoration error of N perturbations at variance scale k, resized and mean-filtered.

    out_size: the evaluation size of the maps (None: the input size); kernel, resize, padding: the
    post-processing (spr.PROTOCOLS). checkpoint: the authors' released weights file for this category
    (nothing is trained then).
    """

    name = "spr"
    FIT_SETTINGS = ("net", "net_kwargs", "sde", "sde_kwargs", "train", "checkpoint")
    net: str = "spr"
    net_kwargs: dict = field(default_factory=dict)
    sde: str = "spr"
    sde_kwargs: dict = field(default_factory=lambda: {"sigma": 25.0})
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: str | None = None
    k: float = 1e-3
    n: int = 3
    kernel: int = 31
    out_size: int | None = None
    resize: str = "lanczos"
    padding: str = "reflect"
    batch_size: int = 32

    def _check(self):
        super()._check()
        _one_of(self.resize, ("lanczos", "bilinear"), "resize")
        _one_of(self.padding, ("reflect", "zeros"), "padding")
        if int(self.n) != self.n or self.n < 1:
            raise ValueError(f"n (perturbations per image) must be a positive integer, got {self.n}")
        if not self.k > 0:
            raise ValueError(f"k (variance scale) must be positive, got {self.k}")

    def fit(self, train, *, device="cpu", seed=0, progress=False, tag=None):
        self.device = resolve_device(device)
        sde = get_sde(self.sde, **self.sde_kwargs)
        if self.checkpoint is not None:
            net = load_official_spr(self.checkpoint, in_channels=train.shape[1])
            self.model, self.history = ScoreModel(net, sde, output="std").to(self.device).eval(), []
        else:
            fitted = fit_score_model(self.net, sde, train, self.train, net_kwargs=self.net_kwargs,
                                     seed=seed, device=self.device, tag=tag or "spr", progress=progress)
            self.model, self.history = fitted.ema, fitted.history
        self.fitted = True
        return self

    def postprocess(self, raw: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """Raw error maps (B, h, w) -> maps at out_size (or size) with this detector's resize and filter."""
        return spr.postprocess(raw, kernel=self.kernel, out_size=self.out_size or size or raw.shape[-1],
                               resize=self.resize, padding=self.padding)

    def details(self, images, *, generator=None) -> dict:
        self._require_fit()
        gen = self._generator(generator)
        raw = spr.error_maps(self.model, images, self.model.sde, k=self.k, n=self.n, batch_size=self.batch_size,
                             generator=gen)
        return {"raw": raw, "maps": self.postprocess(raw, images.shape[-1])}


@register
@dataclass(kw_only=True)
class ScoreDD(_ScoreMethod):
    """Score-DD: whole- vs self-score paths from the start times t_steps / N, feature distances (Secs. 4.2-4.3).

    sde: 've', 'vp' or 'subvp' (sde_kwargs; a VE sigma_max of None = Song's rule on the training images);
    sampler: 'flow' (Algorithm 1) or 'sde' (Algorithm 2); method: 't_scales' (the paper) or Table 4's
    baselines 'no_t_scales' and 'recon_loss'; layers: feature maps compared (None: all).
    """

    name = "scoredd"
    FIT_SETTINGS = ("net", "net_kwargs", "sde", "sde_kwargs", "train")
    net: str = "tiny"
    net_kwargs: dict = field(default_factory=dict)
    sde: str = "vp"
    sde_kwargs: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampler: str = "flow"
    method: str = "t_scales"
    t_steps: tuple = (250, 200, 150, 100, 50)
    r: int = 1
    layers: tuple | None = None
    combine: str = "product"
    batch_size: int | None = None

    def _check(self):
        super()._check()
        _one_of(self.sampler, ("flow", "sde"), "sampler")
        _one_of(self.method, scoredd.METHODS, "method")
        _one_of(self.combine, ("product", "sum"), "combine")

    def fit(self, train, *, device="cpu", seed=0, progress=False, tag=None):
        self.device = resolve_device(device)
        sde = scoredd.build_sde(self.sde, self.sde_kwargs, train)
        kw = dict(self.net_kwargs)
        if PRESETS[self.net][0] is ResUNet:     # Score-DD App. B: Fourier features for VE-type SDEs
            kw.setdefault("embedding", "fourier" if isinstance(sde, (VESDE, SPRSDE)) else "positional")
        fitted = fit_score_model(self.net, sde, train, self.train, net_kwargs=kw, seed=seed,
                                 device=self.device, tag=tag or "scoredd", progress=progress)
        self.model, self.history = fitted.ema, fitted.history
        self.fitted = True
        return self

    @property
    def ts(self) -> tuple[float, ...]:
        """The start times {t} = t_steps / N of the fitted model's SDE."""
        self._require_fit()
        return scoredd.start_times(self.t_steps, self.model.sde)

    def details(self, images, *, generator=None) -> dict:
        self._require_fit()
        maps = scoredd.anomaly_maps(self.model, images.to(self.device), self.model.sde, self.ts, self.r, self.layers,
                                    method=self.method, probability_flow=self.sampler == "flow", combine=self.combine,
                                    generator=self._generator(generator), batch_size=self.batch_size)
        return {"maps": maps}


@register
@dataclass(kw_only=True)
class DDAD(_ScoreMethod):
    """DDAD: conditioned DDIM reconstruction (weight w), D_f + v s D_p, Gaussian blur.

    features: 'denoiser' (the denoiser's own feature maps `denoiser_layers` at time feature_t: no external
    knowledge) or 'wide_resnet50' / 'wide_resnet101' (ImageNet weights file `weights`, found by
    features.resolve_weights; domain adaptation for fe_epochs epochs). norm: how D_p is put on D_f's scale
    ('train': from n_calibration training images, 'image', or 'batch' = the official batch-wide maxima).
    Each image's noise comes from the generator's seed and the image's index, so with norm 'train' or
    'image' a map does not depend on the batch.
    """

    name = "ddad"
    net: str = "ddad"
    net_kwargs: dict = field(default_factory=dict)
    sde_kwargs: dict = field(default_factory=lambda: {"beta_min": 0.1, "beta_max": 20.0, "N": 1000})
    train: TrainConfig = field(default_factory=TrainConfig)
    w: float = 3.0
    v: float = 1.0
    t_start: int = 250
    skip: int = 25
    eta: float = 1.0
    pool: int = 3
    blur_sigma: float = 4.0
    norm: str = "train"
    n_calibration: int = 16
    batch_size: int = 16
    features: str = "denoiser"
    layers: tuple = ("layer2", "layer3")
    denoiser_layers: tuple = ("enc1",)
    feature_t: float = 1e-3
    weights: str | None = None
    data_root: str | None = None
    backbone_input_size: int | None = None
    fe_epochs: int = 0
    da: dict = field(default_factory=lambda: {"w": 3.0, "lr": 1e-4, "layers": ("layer1", "layer2", "layer3"),
                                              "batchnorm": "train"})
    lam: float = 0.1
    da_batch_size: int = 16

    FIT_SETTINGS = ("net", "net_kwargs", "sde_kwargs", "train", "features", "weights", "data_root",
                    "backbone_input_size", "fe_epochs", "da", "lam", "da_batch_size")
    #: settings that leave D_p and D_f unchanged: replacing them keeps the calibrated scale
    SCALE_FREE = ("v", "norm", "blur_sigma", "batch_size")

    def _check(self):
        super()._check()
        _one_of(self.features, ("denoiser", *DEPTHS), "features")
        _one_of(self.norm, ("train", "image", "batch"), "norm")

    def fit(self, train, *, device="cpu", seed=0, progress=False, tag=None):
        self.device = dev = resolve_device(device)
        kw = dict(self.net_kwargs)
        if PRESETS[self.net][0] is ResUNet:
            kw["image_size"] = train.shape[-1]
        fitted = fit_score_model(self.net, VPSDE(**self.sde_kwargs), train, self.train, net_kwargs=kw,
                                 output="eps", seed=seed, device=dev, tag=tag or "ddad", progress=progress)
        self.model, self.history, self.da_history, self.backbone = fitted.ema, fitted.history, [], None
        if self.features != "denoiser":
            feats = load_backbone(self.weights, DEPTHS[self.features], self.da["layers"], data_root=self.data_root,
                                  input_size=self.backbone_input_size).to(dev)
            if self.fe_epochs > 0:
                da = domain_adaptation(feats, self.model, train, epochs=self.fe_epochs, w=self.da["w"], lam=self.lam,
                                       batch_size=self.da_batch_size, lr=self.da["lr"], t_start=self.t_start,
                                       skip=self.skip, eta=self.eta, layers=self.da["layers"],
                                       batchnorm=self.da["batchnorm"], seed=seed, device=dev, progress=progress)
                feats, self.da_history = da.features, da.history
            self.backbone = feats.to(dev).eval()
        self.fitted = True
        self.scale = None
        if self.norm == "train":
            self.calibrate(train[: min(self.n_calibration, len(train))], seed=seed)
        return self

    @property
    def extractor(self):
        """The feature extractor of D_f: the (domain-adapted) backbone, or the denoiser's own features."""
        self._require_fit()
        if self.features == "denoiser":
            return DenoiserFeatures(self.model, self.denoiser_layers, self.feature_t)
        return self.backbone

    @property
    def compared(self) -> tuple:
        """The feature layers compared in D_f: denoiser_layers for the denoiser's features, else layers."""
        return tuple(self.denoiser_layers if self.features == "denoiser" else self.layers)

    def replace(self, **changes) -> "DDAD":
        """A copy with some settings changed, sharing the fitted denoiser and backbone (Detector.replace).

        A change of any setting that moves D_p or D_f (w, t_start, skip, eta, pool, layers, ...; all but
        SCALE_FREE) drops the calibrated scale: with norm 'train' the copy needs calibrate() before it makes maps.
        """
        changed = {k for k, value in changes.items() if not hasattr(self, k) or getattr(self, k) != value}
        new = super().replace(**changes)
        if changed - set(self.SCALE_FREE):
            new.scale = None
        return new

    def calibrate(self, images, *, seed: int = 0) -> float:
        """Fix the D_p scale from normal images, scale = max D_f / max D_p over them (norm 'train'); returns it."""
        d = self.distances(images, seed=seed + 7919)
        self.scale = float(d["d_f"].max() / d["d_p"].max().clamp_min(1e-12))
        return self.scale

    @torch.no_grad()
    def distances(self, images, *, seed: int = 0) -> dict:
        """Reconstructions x0 and the maps D_p, D_f of images (N, C, H, W): {'x0', 'd_p', 'd_f'} on the CPU."""
        self._require_fit()
        extractor, out = self.extractor, {"x0": [], "d_p": [], "d_f": []}
        start = 0
        for y in self._chunks(images, self.batch_size):
            gens = [torch.Generator(device=self.device).manual_seed(int(seed) * 1_000_003 + start + j)
                    for j in range(len(y))]
            start += len(y)
            x0 = ddad.reconstruct(self.model, y, w=self.w, t_start=self.t_start, skip=self.skip, eta=self.eta,
                                  generator=gens)
            out["x0"].append(x0.cpu())
            out["d_p"].append(ddad.pixel_distance(x0, y).cpu())
            out["d_f"].append(ddad.feature_distance(extractor(x0), extractor(y), y.shape[-2:], self.compared,
                                                    self.pool).cpu())
        return {k: torch.cat(v) for k, v in out.items()}

    def combine(self, d_p, d_f, *, norm: str | None = None, batch_size: int | None = None) -> torch.Tensor:
        """ddad.combine_maps with this detector's v, blur, scale and normalisation (or another norm / batch size)."""
        return ddad.combine_maps(d_p, d_f, v=self.v, norm=norm or self.norm, scale=self.scale,
                                 batch_size=batch_size or self.batch_size, blur_sigma=self.blur_sigma)

    def details(self, images, *, generator=None) -> dict:
        seed = generator.initial_seed() if generator is not None else 0
        d = self.distances(images, seed=seed)
        return {**d, "maps": self.combine(d["d_p"], d["d_f"])}
