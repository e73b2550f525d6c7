"""The `scoreviz` command: reproduce the notebooks, inspect and prepare datasets."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["main", "find_notebooks"]


def _default_notebook_dir() -> Path:
    here = Path(__file__).resolve().parents[1] / "notebooks"  # a source checkout
    return here if here.is_dir() else Path.cwd() / "notebooks"


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """Notebooks NN_topic.ipynb in folder, optionally filtered by name ('01', '01_gmm_trajectories' or the topic)."""
    books = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not books:
        raise SystemExit(f"no notebooks (NN_topic.ipynb) found in {folder}; pass --notebooks DIR")
    if not only:
        return books
    chosen = []
    for name in only:
        hits = [b for b in books if name in (b.stem, b.stem[:2], b.stem[3:], b.name)]
        if not hits:
            valid = ", ".join(b.stem for b in books)
            raise SystemExit(f"unknown notebook {name!r} in --only; valid names: {valid}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def _reproduce(args) -> int:
    from .reproduce import check_paper_data, check_params, parse_value, run

    books = find_notebooks(Path(args.notebooks), args.only)
    extra = {}
    for pair in args.param or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"--param takes NAME=VALUE (a notebook parameter), got {pair!r}")
        extra[key] = parse_value(value)  # typed as papermill's -p does: 1 -> int, True -> bool, ...
    check_params(books, extra)
    if args.jobs < 1:
        raise SystemExit(f"--jobs takes a number of notebooks >= 1, got {args.jobs}")
    cores = os.cpu_count() or 1
    if args.jobs > 1 and cores < 2 * args.jobs:  # the cpu profile's Score-DD and DDAD notebooks use 2 threads each
        print(f"warning: --jobs {args.jobs} on {cores} CPU cores: notebooks that use 2 threads then compete for "
              "the cores and the run gets slower, not faster (measured on 2 cores: see the README, "
              "'scoreviz reproduce' timings); use --jobs 1 or a machine with 2 cores per job", file=sys.stderr)
    if args.profile != "cpu":
        check_paper_data(books, args.data_root)
    out = Path(args.out or f"runs/{args.profile}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    params = {"PROFILE": args.profile, "DEVICE": args.device, **extra}
    if args.smoke:
        if args.refresh_figures:
            raise SystemExit("--smoke and --refresh-figures: a smoke run's figures must not replace the committed ones")
        params["SMOKE"] = True
    if args.data_root:
        params["DATA_ROOT"] = str(Path(args.data_root).resolve())
    print(f"scoreviz reproduce: {len(books)} notebook(s), profile {args.profile}, output {out}", flush=True)
    figures = Path(args.notebooks).resolve().parent / "figures" if args.refresh_figures else None
    return run(books, out, params, cache=out.parent / ".cache", jobs=args.jobs, refresh_figures=figures)


def _train(args) -> int:
    """DSM training of one model on one dataset category; torchrun starts one process per GPU."""
    import json
    import os

    import torch
    import torch.distributed as dist

    from . import data, nets, sde, train

    cfg = train.TrainConfig(**train.TrainConfig.parse_settings(args.set))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = args.device
    if world > 1:
        cuda = torch.cuda.is_available() and device != "cpu"
        dist.init_process_group("nccl" if cuda else "gloo")
        if cuda:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
        else:
            device = "cpu"
    images = data.load(args.dataset, args.category, "train", root=args.root, size=args.size,
                       **({"channels": args.channels} if args.channels else {}))
    torch.manual_seed(cfg.seed)
    try:
        sde_kwargs = json.loads(args.sde_kwargs)
    except ValueError as e:
        raise SystemExit(f"error: --sde-kwargs is not JSON ({e}); write e.g. '{{\"sigma\": 25}}'")
    net = nets.build(args.preset, in_channels=images.images.shape[1])
    model = nets.ScoreModel(net, sde.get_sde(args.sde, **sde_kwargs), args.output)
    try:
        res = train.train(model, images, cfg, out_dir=args.out, resume=not args.fresh, device=device,
                          progress=not args.no_progress)
    except KeyboardInterrupt:
        if not (Path(args.out) / train.CKPT_NAME).is_file():
            raise SystemExit("interrupted: stopped by Ctrl-C before the first checkpoint; nothing was saved") from None
        raise SystemExit(f"interrupted: the last checkpoint in {args.out} is kept; run the same command again to "
                         f"resume") from None
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(f"trained {args.preset} on {args.dataset}/{args.category} ({len(images)} images, {world} process(es)): "
              f"epoch {res.epoch}, loss {res.history[-1]:.4g}; checkpoint {res.checkpoint}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def _data_summary(args) -> int:
    from .summary import summarize_report

    text, problems = summarize_report(args.root, dataset=args.dataset, progress=True)
    print(text)
    if problems:
        print(f"error: {len(problems)} problem(s) listed above; fix them before loading this folder", file=sys.stderr)
    return 1 if problems else 0


def _prepare_visa(args) -> int:
    from .visa import prepare_visa

    dst = prepare_visa(args.src, args.dst, split_csv=args.split_csv)
    print(f"VisA written in MVTec layout to {dst}")
    return 0


def _detect(args) -> int:
    from .detect import detect

    page = detect(args.data, out=args.out, method=args.method, dataset=args.dataset, category=args.category,
                  test=args.test, profile=args.profile, size=args.size, seed=args.seed, device=args.device)
    print(f"scores, maps and metrics in {page.parent}; open {page}")
    return 0


def _run(func, args) -> int:
    """Run a subcommand: errors become one `error:` line (the traceback only with --debug), exit code 1; Ctrl-C 130."""
    try:
        return func(args)
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code if e.code.startswith(("error:", "interrupted:")) else f"error: {e.code}", file=sys.stderr)
            return 130 if e.code.startswith("interrupted:") else 1
        raise
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted: stopped by Ctrl-C (what was finished is kept)", file=sys.stderr)
        return 130
    except Exception as e:                                      # noqa: BLE001  (one line for the user)
        if args.debug:
            raise
        print(f"error: {e} ({type(e).__name__}; rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    try:                     # the heavy imports (torch, ...) happen here: a Ctrl-C meanwhile is no traceback
        args = _parser().parse_args(argv)
    except KeyboardInterrupt:
        print("interrupted: stopped by Ctrl-C", file=sys.stderr)
        return 130
    return _run(args.func, args)


def _parser() -> argparse.ArgumentParser:
    from . import configs
    from .detect import choices as detect_choices

    parser = argparse.ArgumentParser(prog="scoreviz", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reproduce", help="run the notebooks with papermill and collect their outputs")
    p.add_argument("--profile", choices=configs.PROFILES, default="cpu",
                   help="cpu (embedded data, minutes), fast (paper data and networks, fast recipe, 1/10 of the "
                        "epochs; GPU), paper (the papers' settings; GPU)")
    p.add_argument("--data-root", help="folder holding the downloaded datasets (fast and paper profiles)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="notebooks to run, e.g. 01 or 01_gmm_trajectories")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", help="output folder (default runs/<profile>-<timestamp>)")
    p.add_argument("--notebooks", default=str(_default_notebook_dir()), help="folder with the notebooks")
    p.add_argument("--jobs", type=int, default=1,
                   help="notebooks run at the same time (default 1; more only with 2 CPU cores per job)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="another notebook parameter, e.g. CHECKPOINTS=/data/spr_weights or SEED=1 (typed as "
                        "papermill's -p: int, float, True/False/None, else a string; given to the notebooks that "
                        "declare it, an undeclared name is refused)")
    p.add_argument("--refresh-figures", action="store_true", help="copy the new figures into the repository's figures/")
    p.add_argument("--smoke", action="store_true",
                   help="a smoke run: one training epoch, the shortest loops (every code path; numbers mean nothing)")
    p.set_defaults(func=_reproduce)

    p = sub.add_parser("train", help="train a score model by DSM (one process, or one per GPU under torchrun)")
    p.add_argument("--dataset", required=True, help="mvtec, mpdd, btad, visa, folder, textures or mnist")
    p.add_argument("--category", help="category (None for a single-category folder)")
    p.add_argument("--root", help="dataset folder (not needed for textures and mnist)")
    p.add_argument("--size", type=int, help="image size (default: the dataset's)")
    p.add_argument("--channels", type=int, help="force 1 or 3 channels")
    p.add_argument("--preset", default="tiny", help="network preset (scoreviz.nets.PRESETS)")
    p.add_argument("--sde", default="spr", help="ve, vp, subvp or spr")
    p.add_argument("--sde-kwargs", default="{}", help='JSON, e.g. \'{"sigma": 25}\'')
    p.add_argument("--output", default="std", choices=("std", "eps"), help="network parameterisation")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="TrainConfig setting, e.g. epochs=3000")
    p.add_argument("--out", required=True, help="checkpoint folder (an existing checkpoint is resumed)")
    p.add_argument("--fresh", action="store_true", help="start afresh: overwrite the checkpoint in --out")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser("data-summary", help="print what a dataset folder contains (categories, counts, sizes)")
    p.add_argument("root")
    p.add_argument("--dataset", help="mvtec, mpdd, btad, visa or folder (default: detect)")
    p.set_defaults(func=_data_summary)

    p = sub.add_parser("prepare-visa", help="convert raw VisA (with split_csv/1cls.csv) to MVTec layout")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--split-csv", help="default: SRC/split_csv/1cls.csv")
    p.set_defaults(func=_prepare_visa)

    p = sub.add_parser("detect", help="fit the methods and baselines on your images; scores, maps, metrics, a page")
    p.add_argument("data", help="a category folder in MVTec AD layout (train/good, test/..., ground_truth/...), "
                                "or a dataset root with --category")
    p.add_argument("--method", default="all", choices=detect_choices(),
                   help="all (methods and baselines), methods, or one detector")
    p.add_argument("--dataset", default="folder", help="folder (default), mvtec, mpdd, btad or visa")
    p.add_argument("--category", help="the category under DATA (with --dataset mvtec, mpdd, btad, visa)")
    p.add_argument("--test", help="score the images of this folder instead of DATA's test split (no labels, no metrics)")
    p.add_argument("--out", default="detect-out", help="output folder (default: detect-out)")
    p.add_argument("--profile", choices=configs.PROFILES, default="cpu", help="settings of the methods")
    p.add_argument("--size", type=int, help="image size (default: 64 on the cpu profile, else 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=_detect)

    return parser


if __name__ == "__main__":
    sys.exit(main())
