"""SPR (Shin et al., ICCV 2023): score-based perturbation resilience.

A sample is perturbed, x~ = x + s_k eps with s_k the marginal std of SPR's SDE at the variance scale
k, and restored in one step by the score: x^ = x~ + s_k^2 score(x~, k) = E[x | x~] (Tweedie, SPR
Eq. 2), which near a data manifold M is the orthogonal projection P_M(x~) (Eq. 3). Points on M come
back to themselves up to the tangential part of the noise; points off M come back onto M, away from
where they started. The restoration error measures that (Eqs. 5 and 6, Algorithm 1).
Points are (B, D), images (B, C, H, W).

On images (notebooks 03-05): `anomaly_map_spr` / `detect` run Algorithm 1 with all N draws of a batch in one
network call, resize the maps to the evaluation size and smooth them with the 31x31 mean filter (PROTOCOLS:
the paper's Lanczos + mirrored borders, or the official code's bilinear + zero padding); `prepare_category`
loads a category and trains (train_cached) or loads (authors' weights) its score model; `k_criterion` chooses
the variance scale k from normal images only (beyond the paper).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from . import data as data_
from . import maps as maps_
from . import metrics as metrics_
from .data import ImageSet
from .nets import ScoreModel, build, load_official_spr
from .sde import SDE, bcast, get_sde
from .train import TrainConfig, resolve_device, train_cached

__all__ = ["restoration_error", "restore", "project_to_curve", "PROTOCOLS", "scaled_kernel", "postprocess",
           "error_maps", "anomaly_map_spr", "Detection", "detect", "time_inference", "CategoryData", "load_category",
           "train_config", "official_checkpoint", "score_model", "categories", "prepare_category", "PAPER_TABLES",
           "benchmark_table", "k_criterion", "select_k"]


def _scale_times(k, n: int, x: torch.Tensor) -> torch.Tensor:
    k = torch.as_tensor(k, dtype=x.dtype, device=x.device)
    if k.ndim != 0:
        raise ValueError(f"k (variance scale) must be a single number, got shape {tuple(k.shape)}")
    return k.expand(n)


@torch.no_grad()
def restoration_error(score_fn, x: torch.Tensor, sde: SDE, k: float = 1e-3, n: int = 3,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """SPR's restoration error map before smoothing (Eq. 6, Algorithm 1): images (B, C, H, W) -> (B, H, W).

    e = mean over n draws eps ~ N(0, I) of the channel sum of (eps + s_k score_fn(x + s_k eps, k))^2,
    with s_k = sde.marginal_std(k). All n draws of the batch go through score_fn in one call of batch
    B * n (draw-major: rows i * B .. (i + 1) * B - 1 hold draw i). Points (B, D) give (B,) (sum over D).
    On the normal manifold of dimension l the expectation is about l per point; at distance d off
    a flat manifold it grows like l + d^2 / s_k^2.
    """
    if x.ndim not in (2, 4):
        raise ValueError(f"x must be points (B, D) or images (B, C, H, W), got shape {tuple(x.shape)}")
    if int(n) != n or n < 1:
        raise ValueError(f"n (number of draws) must be a positive integer, got {n}")
    n, B = int(n), x.shape[0]
    eps = torch.randn((n, *x.shape), generator=generator, dtype=x.dtype, device=x.device)
    t = _scale_times(k, n * B, x)
    std = sde.marginal_std(t)
    flat_eps = eps.reshape(n * B, *x.shape[1:])
    x_tilde = x.repeat(n, *([1] * (x.ndim - 1))) + bcast(std, flat_eps) * flat_eps
    residual = flat_eps + bcast(std, flat_eps) * score_fn(x_tilde, t)
    return residual.pow(2).reshape(n, *x.shape).sum(2).mean(0)


@torch.no_grad()
def restore(score_fn, x_tilde: torch.Tensor, sde: SDE, k: float = 1e-3) -> torch.Tensor:
    """One-step restoration x^ = x~ + s_k^2 score(x~, k) = E[x | x~] (SPR Sec. 4.4 and Eq. 2), shaped like x~."""
    t = _scale_times(k, x_tilde.shape[0], x_tilde)
    return x_tilde + bcast(sde.marginal_std(t) ** 2, x_tilde) * score_fn(x_tilde, t)


@torch.no_grad()
def project_to_curve(x: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Orthogonal projection P_M(x) of points x (B, D) onto the polyline through vertices (K, D), K >= 2.

    Each point goes to the closest point of the closest segment, so for a curve given by many
    ordered points (toys.line_manifold(...).means) this is P_M of SPR Eq. 3 up to the chord error.
    """
    if x.ndim != 2 or vertices.ndim != 2 or x.shape[1] != vertices.shape[1] or vertices.shape[0] < 2:
        raise ValueError(f"x must be (B, D) and vertices (K >= 2, D), got {tuple(x.shape)} and {tuple(vertices.shape)}")
    v = vertices.to(x.dtype)
    a, seg = v[:-1], v[1:] - v[:-1]                                           # (K-1, D)
    u = ((x[:, None] - a[None]) * seg[None]).sum(-1) / seg.pow(2).sum(-1)   # (B, K-1)
    foot = a[None] + u.clamp(0, 1)[..., None] * seg[None]                   # (B, K-1, D)
    best = (foot - x[:, None]).pow(2).sum(-1).argmin(1)
    return foot[torch.arange(x.shape[0]), best]


# ---------------------------------------------------------------------------------------------------------
# Anomaly detection on images: Algorithm 1 end to end, the evaluation protocols, models and data per category.

#: how maps go from the network's resolution to the evaluation size: the paper (Sec. 5.3: Lanczos resizing,
#: 31x31 averaging filter, border handling unspecified -> reflect) and the official code (bilinear upsampling,
#: avg_pool2d with zero padding counted in the mean)
PROTOCOLS = {"paper": {"resize": "lanczos", "padding": "reflect"},
             "official": {"resize": "bilinear", "padding": "zeros"}}


def scaled_kernel(out_size: int, base: int = 31, ref: int = 256) -> int:
    """Odd mean-filter width for maps of out_size px: base * out_size / ref rounded to the nearest odd integer.

    SPR's 31x31 filter at 256 px covers 12 % of the map's width; smaller maps keep that fraction (64 px -> 7).
    """
    if out_size < 1 or base < 1:
        raise ValueError(f"out_size and base must be positive, got {out_size} and {base}")
    return max(1, 2 * int(math.floor((base * out_size / ref - 1) / 2 + 0.5)) + 1)


def postprocess(raw, *, kernel: int = 31, out_size: int = 256, resize: str = "lanczos",
                padding: str = "reflect") -> torch.Tensor:
    """Raw error maps (B, h, w) -> evaluation maps (B, out_size, out_size): resize, then kernel x kernel mean filter.

    Resizing first and filtering at the evaluation size is what the official code does; the paper gives
    no order. resize/padding: 'lanczos'/'reflect' (paper) or 'bilinear'/'zeros' (official code).
    """
    return maps_.mean_filter(maps_.resize_maps(raw, out_size, resize), kernel, padding=padding)


def _device_of(score_fn, fallback: torch.device) -> torch.device:
    try:
        return next(score_fn.parameters()).device
    except (AttributeError, StopIteration):
        return fallback


@torch.no_grad()
def error_maps(score_fn, images: torch.Tensor, sde: SDE, *, k: float = 1e-3, n: int = 3, batch_size: int = 32,
               generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Restoration error maps (Eq. 6, Algorithm 1 lines 1-8) of images (B, C, H, W) -> (B, H, W) on the CPU.

    Images go to the score model's device in chunks of batch_size; each chunk is one call of
    restoration_error, i.e. one network call of batch_size * n. generator lives on that device.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dev = _device_of(score_fn, images.device)
    out = []
    for chunk in tqdm(images.split(batch_size), desc=f"SPR k={k:g} N={n}", disable=not progress, leave=False):
        out.append(restoration_error(score_fn, chunk.to(dev), sde, k, n, generator=generator).float().cpu())
    return torch.cat(out) if out else images.new_zeros((0, *images.shape[2:]))


def anomaly_map_spr(score_fn, images: torch.Tensor, sde: SDE, *, k: float = 1e-3, n: int = 3, kernel: int = 31,
                    out_size: int = 256, resize: str = "lanczos", padding: str = "reflect", batch_size: int = 32,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """SPR anomaly maps (B, out_size, out_size) of images (B, C, H, W): Algorithm 1 + evaluation resizing.

    Restoration error (Eq. 6, all n draws of a chunk in one network call), resized to out_size and
    smoothed by a kernel x kernel mean filter; the image score is the map's maximum (maps.image_scores).
    Defaults are the paper's (k 1e-3, N 3, 31x31, 256 px, Lanczos); PROTOCOLS['official'] gives the code's.
    """
    raw = error_maps(score_fn, images, sde, k=k, n=n, batch_size=batch_size, generator=generator)
    return postprocess(raw, kernel=kernel, out_size=out_size, resize=resize, padding=padding)


@dataclass
class Detection:
    """Result of detect(): raw maps (B, h, w), evaluation maps (B, S, S), image scores (B,), labels (B,),
    masks (B, S, S), metrics {'image_auroc', 'pixel_auroc', 'aupro'} and the inference seconds per image."""

    raw: torch.Tensor
    maps: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    metrics: dict
    seconds_per_image: float
    settings: dict = field(default_factory=dict)

    def reprocess(self, *, pro: bool = True, **post) -> "Detection":
        """The same raw maps post-processed with other settings (kernel, out_size, resize, padding)."""
        settings = {**{key: self.settings[key] for key in ("kernel", "out_size", "resize", "padding")}, **post}
        maps = postprocess(self.raw, **settings)
        masks = _masks_at(self.masks, maps.shape[-1])
        return Detection(self.raw, maps, maps_.image_scores(maps), self.labels, masks,
                         metrics_.evaluate(maps, masks, self.labels, pro=pro), self.seconds_per_image,
                         {**self.settings, **settings})


def _masks_at(masks: torch.Tensor, size: int) -> torch.Tensor:
    if masks.shape[-1] == size and masks.shape[-2] == size:
        return masks.bool()
    return maps_.resize_maps(masks.float(), size, "nearest") > 0.5


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def detect(score_fn, test, sde: SDE, *, masks=None, k: float = 1e-3, n: int = 3, kernel: int = 31,
           out_size: int = 256, resize: str = "lanczos", padding: str = "reflect", batch_size: int = 32,
           seed: int = 0, generator: torch.Generator | None = None, progress: bool = True,
           pro: bool = True) -> Detection:
    """Run SPR on a test ImageSet (images (B, C, H, W)) and evaluate: image AUROC, pixel AUROC, AUPRO.

    masks: ground truth at the evaluation size (B, out_size, out_size); default test.masks (resized with
    nearest when their size differs). The noise draws come from generator (on the model's device), by default
    one seeded with seed there, so a seed gives the same maps on the same machine.
    """
    images = getattr(test, "images", None)
    if images is None or not hasattr(test, "labels"):
        raise ValueError(f"test must be an ImageSet (images, masks, labels), got {type(test).__name__}")
    masks = _masks_at(test.masks if masks is None else torch.as_tensor(masks), out_size)
    if len(masks) != len(images):
        raise ValueError(f"masks has {len(masks)} entries for {len(images)} test images")
    dev = _device_of(score_fn, images.device)
    gen = generator if generator is not None else torch.Generator(device=dev).manual_seed(seed)
    _sync(dev)
    start = time.perf_counter()
    raw = error_maps(score_fn, images, sde, k=k, n=n, batch_size=batch_size, generator=gen, progress=progress)
    _sync(dev)
    seconds = (time.perf_counter() - start) / max(len(images), 1)
    settings = {"k": k, "n": n, "kernel": kernel, "out_size": out_size, "resize": resize, "padding": padding,
                "batch_size": batch_size, "seed": seed}
    maps = postprocess(raw, kernel=kernel, out_size=out_size, resize=resize, padding=padding)
    return Detection(raw, maps, maps_.image_scores(maps), test.labels, masks,
                     metrics_.evaluate(maps, masks, test.labels, pro=pro), seconds, settings)


@torch.no_grad()
def time_inference(score_fn, images: torch.Tensor, sde: SDE, *, k: float = 1e-3, ns=(1, 3, 5), repeats: int = 3,
                   seed: int = 0) -> pd.DataFrame:
    """Inference cost per image of the batched restoration error for each N, against one plain forward pass.

    images (B, C, H, W) are one batch on the model's device; each timing is the best of `repeats` after a
    warm-up (CUDA synchronised). Columns: N, ms_per_image, images_per_s, forward_ms_per_image (score_fn on the
    unperturbed batch, batch B), forward_passes = ms_per_image / forward_ms_per_image (about N), and
    vs_plain_forward = the restoration error's time over that of a plain forward pass of the same B * N images
    (about 1: drawing the noise and squaring the residual cost little; a ratio above 1 in forward_passes but
    not here means the larger batch itself runs slower per image on this device).
    """
    dev = _device_of(score_fn, images.device)
    x = images.to(dev)
    t = torch.full((len(x),), float(k), device=dev, dtype=x.dtype)

    def best_of(fn):
        fn()
        best = float("inf")
        for _ in range(repeats):
            _sync(dev)
            start = time.perf_counter()
            fn()
            _sync(dev)
            best = min(best, time.perf_counter() - start)
        return best / len(x)

    forward = best_of(lambda: score_fn(x, t))
    gen = torch.Generator(device=dev).manual_seed(seed)
    rows = []
    for n in ns:
        sec = best_of(lambda: restoration_error(score_fn, x, sde, k, n, generator=gen))
        xn, tn = x.repeat(n, *([1] * (x.ndim - 1))), t.repeat(n)
        plain = best_of(lambda: score_fn(xn, tn))
        rows.append({"N": n, "ms_per_image": 1e3 * sec, "images_per_s": 1.0 / sec,
                     "forward_ms_per_image": 1e3 * forward, "forward_passes": sec / forward,
                     "vs_plain_forward": sec / plain})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Data and models per category (shared by the SPR notebooks 03-05).

@dataclass
class CategoryData:
    """One category for SPR: train (normal, network input size), holdout (normal images kept out of training,
    or None), test (input size) and masks, the test ground truth at the evaluation size (N, S, S)."""

    name: str
    train: ImageSet
    holdout: ImageSet | None
    test: ImageSet
    masks: torch.Tensor


def _resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    b, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    return maps_.resize_maps(images.reshape(b * c, h, w), size, "lanczos").reshape(b, c, size, size)


def load_category(dataset: str, category: str | None, *, root=None, size: int = 192, eval_size: int = 256,
                  holdout: float = 0.0, seed: int = 0) -> CategoryData:
    """Load one category the way SPR evaluates it: images at size (Lanczos), ground truth at eval_size.

    root (DATA_ROOT): the folder holding <dataset>/<category>/ (or the dataset folder itself); for
    'folder' the category folder. Folder datasets (mvtec, mpdd, btad, visa, folder) are read as RGB (the
    official code converts the grayscale MVTec categories); the embedded textures keep their one channel and
    their test images are drawn at eval_size and resized to size. holdout: this fraction of the normal
    training images (at least 2, a seeded random choice) is kept out of training, for the label-free choice of k.
    """
    key = str(dataset).lower()
    if key == "textures":
        train = data_.load(key, category, "train", size=size, seed=seed)
        full = data_.load(key, category, "test", size=eval_size, seed=seed)
        images = _resize_images(full.images, size)
        test = ImageSet(images, _masks_at(full.masks, size), full.labels, full.defect_types, full.paths)
        masks = full.masks
    else:
        if root is None:
            raise data_.DatasetError(f"dataset {dataset!r} is read from disk: pass root (DATA_ROOT), e.g. the folder "
                                     f"holding {key}/<category>/train (or the category folder itself for 'folder')")
        root = Path(root).expanduser()
        if key != "folder" and (root / key).is_dir():
            root = root / key
        kw = {"root": root, "channels": 3}
        train = data_.load(key, category, "train", size=size, **kw)
        test = data_.load(key, category, "test", size=size, **kw)
        masks = data_.load(key, category, "test", size=eval_size, **kw).masks
    name = category if category is not None else Path(root).name
    held = None
    if holdout:
        if not 0 < holdout < 1:
            raise ValueError(f"holdout={holdout} must be a fraction in (0, 1) of the training images, or 0")
        count = max(2, round(holdout * len(train)))
        if count > len(train) - 2:
            raise ValueError(f"holdout={holdout} leaves too few training images ({name} has {len(train)})")
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        held, train = train.subset(perm[:count].sort().values), train.subset(perm[count:].sort().values)
    return CategoryData(name, train, held, test, masks)


def train_config(cfg, dataset: str, n_images: int | None = None) -> TrainConfig:
    """TrainConfig of an 'spr' config: cfg.train, the learning-rate milestones of the dataset (MVTec only), and
    in the cpu profile enough epochs for cfg.min_steps optimizer steps on n_images (small folders train longer)."""
    settings = {**cfg.train, "milestones": tuple(cfg.milestones.get(str(dataset).lower(), ()))}
    if n_images and cfg.get("min_steps"):
        steps_per_epoch = math.ceil(n_images / settings.get("batch_size", TrainConfig.batch_size))
        settings["epochs"] = max(settings["epochs"], math.ceil(cfg.min_steps / steps_per_epoch))
    return TrainConfig(**settings)


def categories(cfg, dataset: str, names=None) -> list:
    """Categories to run: names if given, else the config's list for the dataset, else all of the dataset's
    (data.CATEGORIES); [None] for 'folder' (DATA_ROOT is the category folder)."""
    key = str(dataset).lower()
    if key == "folder":
        return [None]
    if names is not None:
        return [names] if isinstance(names, str) else list(names)
    chosen = cfg.categories.get(key) if cfg.get("categories") else None
    return list(chosen or data_.categories(key))


def official_checkpoint(checkpoints, category: str) -> Path:
    """Path of the authors' released weights for a category, checkpoints/<category>.pth, or a clear error."""
    folder = Path(checkpoints).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"CHECKPOINTS={str(checkpoints)!r} is not a folder; download the authors' released "
                                "SPR weights (one <category>.pth per MVTec AD category) and point CHECKPOINTS at it")
    path = folder / f"{category}.pth"
    if not path.is_file():
        found = sorted(p.name for p in folder.glob("*.pth"))
        raise FileNotFoundError(f"no SPR checkpoint {path.name} in {folder}; found {found or 'no .pth files'}. "
                                "Expected one file per category named <category>.pth (e.g. bottle.pth)")
    return path


def score_model(cfg, dataset: str, category: str, train_images, *, checkpoints=None, device="auto",
                progress: bool = True) -> ScoreModel:
    """The EMA score model of one category (eval mode, on device), as a score_fn(x, k).

    checkpoints: a folder of the authors' released <category>.pth files: they are loaded into the 'spr'
    network (nets.load_official_spr) and nothing is trained. Otherwise cfg.net is trained by DSM (SPR Eq. 4)
    with train_cached, so every notebook reuses the same model.
    """
    dev = resolve_device(device)
    sde = get_sde(cfg.sde, **cfg.sde_kwargs)
    if checkpoints is not None:
        net = load_official_spr(official_checkpoint(checkpoints, category), in_channels=train_images.shape[1])
        return ScoreModel(net, sde, output="std").to(dev).eval()
    tcfg = train_config(cfg, dataset, len(train_images))
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG state untouched
        torch.manual_seed(tcfg.seed)
        net = build(cfg.net, **{**cfg.net_kwargs, "in_channels": train_images.shape[1]})
    model = ScoreModel(net, sde, output="std")
    result = train_cached(model, train_images, tcfg, tag=f"spr-{dataset}-{category}", device=dev, progress=progress)
    return result.ema.to(dev).eval()


def prepare_category(cfg, dataset: str, category: str | None, *, root=None, checkpoints=None, seed: int = 0,
                     device="auto", progress: bool = True) -> tuple[CategoryData, ScoreModel]:
    """Data (load_category with cfg.size, cfg.eval_size, cfg.holdout) and score model (score_model) of a category."""
    data = load_category(dataset, category, root=root, size=cfg.size, eval_size=cfg.eval_size,
                         holdout=cfg.holdout, seed=seed)
    model = score_model(cfg, dataset, data.name, data.train.images, checkpoints=checkpoints, device=device,
                        progress=progress)
    return data, model


#: where the paper reports each (dataset, metric) of SPR
PAPER_TABLES = {("mvtec", "image_auroc"): "Table 4", ("mvtec", "pixel_auroc"): "Table 1",
                ("btad", "pixel_auroc"): "Table 2", ("mpdd", "pixel_auroc"): "Table 3"}


def benchmark_table(results: pd.DataFrame, dataset: str, metric: str, labels: dict | None = None):
    """One of the paper's Tables 1-4 layouts: methods as rows, 'mean' then categories as columns (fractions).

    results: rows with columns dataset, category, variant and the metric; labels maps variant -> row name
    (default: the variants as they are). When the paper reports (dataset, metric), its row comes first and a
    paper.compare table (paper, measured, diff) of the first variant is returned too, else None.
    """
    from . import paper

    part = results[results["dataset"] == dataset]
    if part.empty:
        raise ValueError(f"no results for dataset {dataset!r}; have {sorted(results['dataset'].unique())}")
    labels = labels or {v: v for v in part["variant"].unique()}
    wide = part.pivot(index="variant", columns="category", values=metric).reindex(list(labels))
    wide.insert(0, "mean", wide.mean(axis=1))
    wide.index = [labels[v] for v in wide.index]
    if (dataset, metric) not in PAPER_TABLES:
        return wide, None
    ref = paper.reported("spr", dataset, metric)
    row = pd.DataFrame([{"mean": ref["mean"], **{c: ref.get(paper.canonical_category(c, dataset), math.nan)
                                                 for c in wide.columns[1:]}}],
                       index=[f"SPR (paper, {PAPER_TABLES[dataset, metric]})"])
    measured = part[part["variant"] == next(iter(labels))].set_index("category")[metric]
    compared = paper.compare({**measured.to_dict(), "mean": measured.mean()}, "spr", dataset, metric)
    return pd.concat([row, wide]), compared


# ---------------------------------------------------------------------------------------------------------
# Beyond the paper: a choice of k from normal images only.

@torch.no_grad()
def k_criterion(score_fn, normal_images: torch.Tensor, sde: SDE, ks, *, n: int = 3, kernel: int = 31,
                out_size: int = 256, resize: str = "lanczos", padding: str = "reflect", batch_size: int = 32,
                seed: int = 0) -> pd.DataFrame:
    """Label-free score of each variance scale k from normal images (B, C, H, W) only; pick k = argmax.

    Columns: k, sigma_k; r = mean restoration error per channel (the fraction of the squared perturbation
    that one score step leaves on normal data; 1 = a zero score); c = 1 - sqrt(r), the fraction of a
    perturbation's length the learned score removes; spread = std over the images of the image score
    (max of the smoothed map); criterion = c^2 / (sigma_k^2 * spread). An off-manifold displacement delta
    raises the error by about c^2 delta^2 / sigma_k^2 (Eq. 6 with a score that removes the fraction c),
    so the criterion is its size relative to the normal images' score spread, up to the unknown delta^2.
    """
    if normal_images.ndim != 4 or len(normal_images) < 2:
        raise ValueError(f"normal_images must be (B >= 2, C, H, W), got shape {tuple(normal_images.shape)}")
    dev = _device_of(score_fn, normal_images.device)
    rows = []
    for k in ks:
        k = float(k)
        gen = torch.Generator(device=dev).manual_seed(seed)
        raw = error_maps(score_fn, normal_images, sde, k=k, n=n, batch_size=batch_size, generator=gen)
        r = raw.mean().item() / normal_images.shape[1]
        c = max(0.0, 1.0 - math.sqrt(r))
        scores = maps_.image_scores(postprocess(raw, kernel=kernel, out_size=out_size, resize=resize, padding=padding))
        sigma = sde.marginal_std(torch.tensor([k], dtype=torch.float64)).item()
        spread = scores.double().std().item()
        rows.append({"k": k, "sigma_k": sigma, "r": r, "c": c, "spread": spread,
                     "criterion": c**2 / (sigma**2 * spread) if spread > 0 else float("nan")})
    return pd.DataFrame(rows)


def select_k(table: pd.DataFrame) -> float:
    """The k with the largest label-free criterion in a k_criterion table."""
    if table["criterion"].isna().all():
        raise ValueError("the criterion is undefined for every k (constant image scores); check the model and images")
    return float(table.loc[table["criterion"].idxmax(), "k"])
