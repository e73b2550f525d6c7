"""`scoreviz detect`: the methods (and the baselines beside them) on one's own images.

    scoreviz detect DATA --method all            # DATA: a category folder in MVTec AD layout
    scoreviz detect DATA --test UNLABELLED_DIR   # score a folder of unknown images (no metrics)

Each detector is built from the chosen profile's settings (configs), fitted on DATA/train/good (score
models are trained once and cached, see train.train_cached), and scores the test images. The output
folder gets scores.csv (one row per test image, one column per detector), metrics.csv when labels exist,
maps/<detector>/<image>.png (the input, its anomaly map over it, and the ground truth when there is one,
side by side) and index.html: settings, machine, metrics and, per detector, the most and least anomalous
test images (with labels: also the lowest-scored defective and the highest-scored normal images).
"""
from __future__ import annotations

import datetime
import html
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib import colormaps
from PIL import Image
from tqdm import tqdm

from . import configs, detectors, metrics
from .data import ImageSet, load, load_images
from .experiments import category_names, load_category
from .machine import atomic_csv, machine_info
from .maps import resize_maps
from .train import resolve_device

__all__ = ["METHODS", "BASELINES", "build", "detect"]

METHODS = ("spr", "scoredd", "ddad")
BASELINES = ("zscore", "patch_nn")
SIZES = {"cpu": 64, "fast": 256, "paper": 256}      # default image size per profile
N_SHOW = 4                                          # images per row of the page


def choices() -> tuple[str, ...]:
    """What --method accepts: 'all' (methods and baselines), 'methods', or one detector."""
    return ("all", "methods") + METHODS + BASELINES


def build(method: str, *, profile: str, dataset: str, category: str | None, size: int, n_train: int,
          data_root=None) -> dict[str, detectors.Detector]:
    """{label: unfitted detector} for `method` (see choices) with the profile's settings at `size`.

    spr: the profile's k, N and network (maps at `size`); scoredd: the profile's first Table 1 variant
    (cpu: VE, flow ODE) with its start times and layers; ddad: the profile's settings for this category.
    """
    if method not in choices():
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(choices())}")
    names = {"all": METHODS + BASELINES, "methods": METHODS}.get(method, (method,))
    key, cat = str(dataset).lower(), category or "folder"
    out = {}
    for name in names:
        if name == "spr":
            cfg = configs.get(profile, "spr", size=size, eval_size=size)
            out["spr"] = cfg.detector(key, cat, n_train=n_train)
        elif name == "scoredd":
            cfg = configs.get(profile, "scoredd_images", size=size)
            sde, sampler = cfg.variants[0]
            out[f"scoredd_{sde}_{sampler}"] = cfg.detector(sde, sampler)
        elif name == "ddad":
            out["ddad"] = configs.get(profile, "ddad", size=size).detector(key, cat, data_root=data_root)
        else:
            out[name] = detectors.build(name)
    return out


def _rgb(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    a = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def overlay(image: torch.Tensor, amap: torch.Tensor, vmin: float, vmax: float, mask=None) -> Image.Image:
    """The input, the map (inferno, scaled vmin..vmax) blended over it, and the mask if given, side by side."""
    rgb = _rgb(image)
    heat = colormaps["inferno"](np.clip((amap.numpy() - vmin) / max(vmax - vmin, 1e-12), 0, 1))[..., :3] * 255
    panels = [rgb, (0.4 * rgb + 0.6 * heat).round().astype(np.uint8)]
    if mask is not None:
        panels.append(np.repeat(mask.numpy().astype(np.uint8)[..., None] * 255, 3, axis=2))
    gap = np.full((rgb.shape[0], 4, 3), 255, np.uint8)
    return Image.fromarray(np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1))


def _load(data, *, dataset, category, test, size, seed) -> tuple[ImageSet, ImageSet, bool]:
    """(train, test, labelled): the category's normal training images and its test split, or the images of the
    folder `test` (unlabelled)."""
    if test is None:
        cat = load_category(dataset, category, root=data, size=size, seed=seed)
        return cat.train, cat.test, True
    train = load(dataset, category, "train", root=data, size=size)
    return train, load_images(test, size=size, channels=train.images.shape[1]), False


def detect(data, *, out, method: str = "all", dataset: str = "folder", category: str | None = None,
           test=None, profile: str = "cpu", size: int | None = None, seed: int = 0, device="auto",
           batch: int = 8) -> Path:
    """Fit the detectors of `method` on DATA's normal training images, score the test images (DATA's test
    split, or the images of the folder `test`: no labels, no metrics) and write scores, maps, metrics and
    index.html to `out`. Returns the page's path."""
    if profile not in configs.PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(configs.PROFILES)}")
    if str(dataset).lower() != "folder" and category is None:
        with warnings.catch_warnings():             # the categories found are the point here, not the missing ones
            warnings.simplefilter("ignore")
            found = category_names(dataset, root=data)
        raise ValueError(f"dataset {dataset!r} holds several categories: name one with category= (CLI: --category), "
                         f"e.g. one of {', '.join(map(str, found))}")
    size = int(size or SIZES[profile])
    train, testset, labelled = _load(data, dataset=dataset, category=category, test=test, size=size, seed=seed)
    dets = build(method, profile=profile, dataset=dataset, category=category, size=size, n_train=len(train),
                 data_root=data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    tag = f"detect-{dataset}-{category or Path(data).resolve().name}-{size}px"
    rows, table, maps_of = [], {"image": [Path(p).name for p in testset.paths]}, {}
    if labelled:
        table.update(label=testset.labels.tolist(), defect=testset.defect_types)
    for label, det in dets.items():
        print(f"{label}: fitting on {len(train)} normal images ({size} px, {profile} profile)", flush=True)
        t0 = time.perf_counter()
        det.fit(train.images, device=dev, seed=seed, progress=True, tag=f"{label}-{tag}")
        fit_s = time.perf_counter() - t0
        g = torch.Generator(device=det.device).manual_seed(seed)
        t0 = time.perf_counter()
        chunks = [det.maps(testset.images[i:i + batch], generator=g)
                  for i in tqdm(range(0, len(testset), batch), desc=f"{label}: maps", unit="batch")]
        maps_s = time.perf_counter() - t0
        amaps = resize_maps(torch.cat(chunks), tuple(testset.images.shape[-2:]), "lanczos")
        scores = det.scores(amaps)
        table[label] = scores.tolist()
        maps_of[label] = (amaps, scores)
        row = {"detector": label, "fit_s": round(fit_s, 1), "ms_per_image": round(1e3 * maps_s / len(testset), 1)}
        if labelled and 0 < int(testset.labels.sum()) < len(testset):     # AUROCs need normal and defective images
            row.update(metrics.evaluate(amaps, testset.masks, testset.labels, image_scores=scores))
        rows.append(row)
        _write_maps(out / "maps" / label, testset, amaps, labelled)
    atomic_csv(pd.DataFrame(table), out / "scores.csv", float_format="%.4f")
    summary = pd.DataFrame(rows)
    atomic_csv(summary, out / "metrics.csv", float_format="%.4f")
    page = out / "index.html"
    meta = {"data": str(Path(data).resolve()), "test": str(test) if test else "DATA/test", "profile": profile,
            "size": size, "seed": seed, "device": str(dev), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "settings": {label: det.settings for label, det in dets.items()}}
    meta["machine"] = machine_info()
    page.write_text(_page(meta, summary, testset, maps_of, labelled))
    return page


def _write_maps(folder: Path, testset: ImageSet, amaps: torch.Tensor, labelled: bool) -> None:
    """One overlay PNG per test image; one colour scale for all images of a detector (min .. 99.9th percentile)."""
    folder.mkdir(parents=True, exist_ok=True)
    flat = amaps.flatten()
    vmin, vmax = float(flat.min()), float(torch.quantile(flat[:: max(1, len(flat) // 1_000_000)], 0.999))
    for i, path in enumerate(testset.paths):
        mask = testset.masks[i] if labelled and testset.labels[i] == 1 else None
        overlay(testset.images[i], amaps[i], vmin, vmax, mask).save(folder / _png_name(testset, i))


def _png_name(testset: ImageSet, i: int) -> str:
    return f"{testset.defect_types[i]}_{Path(testset.paths[i]).stem}.png"


def _figures(label, testset, idx, scores) -> str:
    cells = []
    for i in idx:
        src = f"maps/{label}/{_png_name(testset, i)}"
        cap = f"{html.escape(Path(testset.paths[i]).name)} ({html.escape(testset.defect_types[i])}), score {scores[i]:.4g}"
        cells.append(f'<figure><img src="{html.escape(src)}" alt="{cap}"><figcaption>{cap}</figcaption></figure>')
    return "".join(cells)


def _page(meta: dict, summary: pd.DataFrame, testset: ImageSet, maps_of: dict, labelled: bool) -> str:
    parts = [f"<h1>scoreviz detect: {html.escape(Path(meta['data']).name)}</h1>",
             f"<p>{len(testset)} test images, {meta['size']} px, {meta['profile']} profile, seed {meta['seed']}, "
             f"{html.escape(meta['device'])}; {html.escape(meta['machine']['cpu'])}, GPU "
             f"{html.escape(meta['machine']['gpu'])}; {meta['date']}. Each image: the input, the map over it "
             f"(one colour scale per detector) and the ground truth.</p>",
             "<h2>Detectors</h2>", summary.to_html(index=False, float_format="%.3f", na_rep="-")]
    if not labelled:
        parts.append("<p>The test images have no labels: scores and maps only, no metrics.</p>")
    for label, (amaps, scores) in maps_of.items():
        order = torch.argsort(scores, descending=True).tolist()
        rows = [("Most anomalous", order[:N_SHOW]), ("Least anomalous", order[::-1][:N_SHOW])]
        if labelled:
            rows += [("Defective images with the lowest scores (the hardest to find)",
                      [i for i in order[::-1] if testset.labels[i] == 1][:N_SHOW]),
                     ("Normal images with the highest scores (the nearest to false alarms)",
                      [i for i in order if testset.labels[i] == 0][:N_SHOW])]
        parts.append(f"<h2>{html.escape(label)}</h2>")
        for title, idx in rows:
            parts.append(f"<h3>{title}</h3><div class='row'>{_figures(label, testset, idx, scores)}</div>")
    parts.append("<h2>Settings</h2><pre>" + html.escape(json.dumps(meta["settings"], indent=1, default=str)) +
                 "</pre><h2>Machine</h2><pre>" + html.escape(json.dumps(meta["machine"], indent=1)) + "</pre>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px} .row{display:flex;flex-wrap:wrap;gap:1em} "
             "figure{margin:0} img{height:160px;image-rendering:pixelated} figcaption{font-size:80%} "
             "table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>scoreviz detect</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")

