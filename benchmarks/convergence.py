"""Convergence of training recipes: SPR's image / pixel AUROC against training seconds, same network and data.

    python -m benchmarks.convergence                          # grass and digit3 of the embedded benchmark, 32 px
    python -m benchmarks.convergence --epochs 5 10 --categories face
    python -m benchmarks.convergence --recipes paper fast --epochs 10 20 40 80 160 320 640 1500 3000 --up-to fast=640
    python -m benchmarks.convergence --categories grass --seeds 1 --recipes paper fast --epochs 10 20 40 --up-to fast=20

Recipes (train.TrainConfig) on the cpu profile's SPR network (batch 16) and the embedded benchmark. A cosine
schedule depends on its length, so the fast recipe is trained afresh for every budget of epochs; the others are
trained once, each longer budget continuing the shorter one (train_cached; exact), and train_s adds up:
  paper: SPR's own optimiser settings (AdamW lr 1e-4, weight decay 1e-3, EMA 0.9999, no clipping, lr x 0.1 at
         epochs 1000 and 2000 as for MVTec AD; 3000 epochs in the paper)
  cpu:   the cpu profile's (lr 2e-3, EMA 0.99, gradient clipping 1.0, constant lr)
  fast:  the fast recipe (lr 2e-3, linear warm-up over 50 steps, cosine decay to 0, EMA 0.999 with EMA warm-up,
         gradient clipping 1.0)
Models go to a temporary model cache (nothing from earlier runs), so train_s is the training time on this machine.
Each trained model is scored at its label-free k (selection.k_criterion on the 20 held-out normal images).
Rows go to benchmarks/quality/convergence.csv, the figure to benchmarks/quality/convergence.png, the table to
benchmarks/QUALITY.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from scoreviz import configs, experiments, plots, selection
from scoreviz.machine import atomic_csv, machine_info

HERE = Path(__file__).resolve().parent
RECIPES = {
    "paper": dict(lr=1e-4, weight_decay=1e-3, ema_decay=0.9999, grad_clip=None, milestones=(1000, 2000)),
    "cpu": dict(lr=2e-3, weight_decay=1e-3, ema_decay=0.99, grad_clip=1.0),
    "fast": dict(lr=2e-3, weight_decay=1e-3, ema_decay=0.999, grad_clip=1.0, schedule="cosine", warmup=50,
                 ema_warmup=True),
}


def measure(categories, epochs, recipes, *, size=32, seeds=(0,), up_to: dict | None = None) -> pd.DataFrame:
    """One row per seed x category x recipe x budget of epochs (budgets above up_to[recipe] skipped); the seed
    draws the category's images (train / held-out / test) and the training."""
    cfg = configs.get("cpu", "spr", size=size, eval_size=size, min_steps=0)
    ks = np.logspace(*cfg.k_grid)
    rows = []
    for seed, name in ((s, c) for s in seeds for c in categories):
        cat = experiments.load_category("embedded", name, size=size, holdout=20, seed=seed)
        for recipe in recipes:
            spent = 0.0                                     # training seconds of the run so far
            continues = RECIPES[recipe].get("schedule") != "cosine"
            for e in sorted(e for e in epochs if e <= (up_to or {}).get(recipe, e)):
                det = cfg.replace(train={**RECIPES[recipe], "epochs": e}).detector("embedded", name)
                fit = experiments.run(det, cat, dataset="embedded", seed=seed, device="cpu", pro=False)
                spent = spent + fit.seconds["fit"] if continues else fit.seconds["fit"]
                k = selection.select_k(selection.detector_k_criterion(det, cat.holdout.images, ks, seed=seed))
                r = experiments.run(det.replace(k=k), cat, dataset="embedded", seed=seed, device="cpu", pro=False)
                rows.append({"category": name, "seed": seed, "recipe": recipe, "epochs": e, "steps": e * -(-len(cat.train) // det.train.batch_size),
                             "train_s": spent, "k": k, **{m: r.metrics[m] for m in ("image_auroc",
                                                                                                "pixel_auroc")}})
                print(f"  {name:7s} seed {seed} {recipe:5s} {e:4d} epochs {spent:6.1f} s  k {k:.3g}  image "
                      f"{rows[-1]['image_auroc']:.3f}  pixel {rows[-1]['pixel_auroc']:.3f}", flush=True)
    return pd.DataFrame(rows)


def reach(rows: pd.DataFrame, metric: str = "image_auroc", target: str = "paper", fast: str = "fast") -> pd.DataFrame:
    """Per category and seed: the target recipe's final `metric` (at its longest budget) and training seconds, and
    the first budget of `fast` at or above it, with its seconds as a share of the target's (NaN: never reached)."""
    out = []
    for (name, seed), part in rows.groupby(["category", "seed"], sort=False):
        final = part[part.recipe == target].sort_values("epochs").iloc[-1]
        hit = part[(part.recipe == fast) & (part[metric] >= final[metric])].sort_values("train_s")
        first = hit.iloc[0] if len(hit) else pd.Series({"epochs": np.nan, metric: np.nan, "train_s": np.nan})
        out.append({"category": name, "seed": seed, f"{target} epochs": final.epochs, f"{target} {metric}": final[metric],
                    f"{target} s": final.train_s, f"{fast} epochs": first.epochs, f"{fast} {metric}": first[metric],
                    f"{fast} s": first.train_s, "share of time": first.train_s / final.train_s})
    return pd.DataFrame(out)


def figure(rows: pd.DataFrame, baselines: dict | None = None):
    """Image AUROC (top) and pixel AUROC (bottom) against training seconds, one column per category and seed: the
    paper recipe's final value (dashed), a fifth of its training time (dotted) and the baselines (gray)."""
    columns = list(dict.fromkeys(zip(rows.category, rows.seed)))
    fig, axes = plt.subplots(2, len(columns), figsize=(5.2 * len(columns), 7.6), squeeze=False)
    for col, (name, seed) in enumerate(columns):
        part_of = rows[(rows.category == name) & (rows.seed == seed)]
        paper = part_of[part_of.recipe == "paper"].sort_values("epochs")
        for ax, metric in zip(axes[:, col], ("image_auroc", "pixel_auroc")):
            for recipe, part in part_of.groupby("recipe", sort=False):
                plots.plot_curve(part.train_s, part[metric], ax=ax, label=recipe, logx=True,
                                 xlabel="training seconds (this CPU)",
                                 ylabel=metric.replace("_auroc", " AUROC") + " (label-free k)")
            if len(paper):
                last = paper.iloc[-1]
                ax.axhline(last[metric], color="black", ls="--", lw=0.8)
                ax.axvline(last.train_s / 5, color="black", ls=":", lw=0.8)
                ax.text(last.train_s / 5, 0.02, " 1/5 of paper's time", fontsize=7, rotation=90, va="bottom",
                        ha="right", transform=ax.get_xaxis_transform())
            for b, value in (baselines or {}).get((name, seed, metric), {}).items():
                ax.axhline(value, color="gray", ls=":", lw=1)
                ax.text(0.0, value, f" {b}", va="bottom", ha="left", fontsize=8, color="gray",
                        transform=ax.get_yaxis_transform())
            ax.set_title(f"SPR on embedded/{name}, seed {seed}: {metric.replace('_auroc', '')} AUROC")
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def save(rows: pd.DataFrame, size: int) -> None:
    """rows to quality/convergence.csv (the rows of earlier runs kept for other categories and seeds), the figure
    beside it with the baselines' rows of the same seeds in quality/embedded-<size>px.csv."""
    out = HERE / "quality"
    out.mkdir(exist_ok=True)
    if (out / "convergence.csv").exists():
        old = pd.read_csv(out / "convergence.csv")
        done = old.set_index(["category", "seed"]).index.isin(rows.set_index(["category", "seed"]).index)
        rows = pd.concat([old[~done], rows], ignore_index=True).sort_values(["category", "seed"], kind="stable")
    atomic_csv(rows, out / "convergence.csv", index=False)
    lines = {}
    if (out / f"embedded-{size}px.csv").exists():
        base = pd.read_csv(out / f"embedded-{size}px.csv")
        base = base[base.detector.isin(["zscore", "patch_nn"])]
        for (cat, seed, det), part in base.groupby(["category", "seed", "detector"]):
            for metric in ("image_auroc", "pixel_auroc"):
                lines.setdefault((cat, seed, metric), {})[det] = part[metric].mean()
    plots.save_figure(figure(rows, lines), "convergence", out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--categories", nargs="+", default=["grass", "digit3"])
    p.add_argument("--epochs", nargs="+", type=int, default=[5, 10, 20, 40, 80])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--up-to", nargs="+", default=[], metavar="RECIPE=EPOCHS",
                   help="skip a recipe's budgets above EPOCHS (e.g. fast=640)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ["SCOREVIZ_CACHE"] = tempfile.mkdtemp(prefix="convergence-")   # time real training, not cache hits
    up_to = {}
    for item in args.up_to:
        recipe, _, e = item.partition("=")
        if recipe not in RECIPES or not e.isdigit():
            raise SystemExit(f"--up-to {item}: expected RECIPE=EPOCHS with RECIPE one of {', '.join(RECIPES)}")
        up_to[recipe] = int(e)
    rows = measure(args.categories, args.epochs, args.recipes, size=args.size, seeds=args.seeds, up_to=up_to)
    save(rows, args.size)
    info = machine_info()
    table = rows.pivot_table(index=["category", "seed", "epochs"], columns="recipe",
                             values=["train_s", "image_auroc", "pixel_auroc"],
                             sort=False).round(3)
    text = (f"\n## {datetime.datetime.now():%Y-%m-%d %H:%M}: convergence of training recipes (SPR, embedded, "
            f"{args.size} px, seeds {', '.join(map(str, args.seeds))})\n\n{info['cpu']}, {args.threads} threads, commit {info.get('commit', '?')}; "
            f"command `python -m benchmarks.convergence {' '.join(argv if argv is not None else sys.argv[1:])}`; "
            f"figure `quality/convergence.png`\n\n```\n{table.to_string()}\n```\n")
    if {"paper", "fast"} <= set(rows.recipe):
        for metric in ("image_auroc", "pixel_auroc"):
            text += (f"\nThe fast recipe against the paper recipe's final {metric} (`benchmarks.convergence.reach`):"
                     f"\n\n```\n{reach(rows, metric).round(3).to_string(index=False)}\n```\n")
    with open(HERE / "QUALITY.md", "a") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
