"""GPU check: training speed, peak memory and detector inference speed of the three papers' networks.

    python -m benchmarks.bench_gpu [--device cuda] [--quick] [--out benchmarks/RESULTS.md] [--budget-s 200]

For each network, `spr` (SPR), `ncsnpp` (Score-DD) and `ddad` (DDAD), at its paper profile's resolution
(configs.get("paper", ...): SPR 192 px, Score-DD 256 px, DDAD 256 px) and batch sizes:

- training: images/s of `train.train` itself (the package's loop: its bf16 autocast, channels_last and fused
  AdamW defaults on CUDA, EMA, gradient clipping as configured) with the profile's TrainConfig, over two
  epochs of 5 optimizer steps after one such epoch of warm-up, on random images; peak memory =
  torch.cuda.max_memory_allocated during train() (network, EMA copy, AdamW state, the random training set on
  the GPU, activations).
- inference: images/s of the detector the paper profile builds (`cfg.detector(...)`), maps of one batch of
  the profile's inference batch size, 3 calls after one warm-up call; peak memory of those calls (float32,
  as the detectors run; the fitted networks' weights included). The detectors are
  fitted with TrainConfig(epochs=0) (the paper-profile network with its initial weights, on the device, the
  way fit() builds it; speed does not depend on the weights). SPR: N = 3, maps at 256 px; Score-DD: Table 1's
  first variant (VE, probability flow), T = 5, r = 1; DDAD: the paper's Wide-ResNet-101-2 features, from a
  randomly initialised WideResNet(101) saved in torchvision's layout (no ImageNet weights are needed),
  without domain adaptation (fe_epochs = 0); if that fails, the denoiser's own features (the row says which).

Every measurement runs in its own try/except: a failure (out of memory, ...) becomes a row with the error and
the rest still runs; measurements that would start after --budget-s seconds become "skipped" rows. The table is printed and appended to --out (default benchmarks/RESULTS.md) under
"## GPU check (<device>, <date>)". --quick: tiny images, narrow networks, batch 2, one timed step (a test of
this script on the CPU, not a measurement); it appends nothing unless --out is given. `python -m benchmarks`
calls run(), which measures only when CUDA is available. Exit status 1 when any measurement failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from benchmarks import device_threads
from scoreviz import configs, features
from scoreviz.machine import machine_info
from scoreviz.nets import ScoreModel, build, count_parameters
from scoreviz.sde import get_sde
from scoreviz.train import TrainConfig, model_config, train

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
NETWORKS = ("spr", "ncsnpp", "ddad")
#: --quick: image size and narrow network of each (sizes are multiples of each U-Net's 2^levels)
QUICK = {"spr": (32, {"channels": (16, 32, 32, 32, 32), "groups": 8, "embed_dim": 32}),
         "ncsnpp": (64, {"ch": 8, "num_res_blocks": 1}),
         "ddad": (32, {"ch": 8, "num_res_blocks": 1, "attn_res": (8,)})}   # attention at 32 px: slow on a CPU
COLUMNS = ("network", "params (M)", "px", "batch", "measurement", "value", "unit", "peak memory (MB)", "details")


@dataclasses.dataclass
class Plan:
    """How many steps and repeats are timed; budget_s: measurements that would start later are skipped."""
    quick: bool = False
    epoch_steps: int = 5        # optimizer steps per epoch of train(): one untimed epoch (warm-up), then ...
    timed_epochs: int = 2       # ... these, timed
    repeats: int = 3            # timed detector calls of one batch ...
    warmup_calls: int = 1       # ... after this many untimed ones
    budget_s: float = 200.0

    @classmethod
    def make(cls, quick: bool, budget_s: float | None = None) -> Plan:
        p = cls(quick=True, epoch_steps=1, timed_epochs=1, repeats=1, warmup_calls=0, budget_s=120.0) if quick else cls()
        if budget_s is not None:
            p.budget_s = budget_s
        return p


# ---------------------------------------------------------------------------------------------- helpers
def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU: {machine_info()['cpu']}"


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_mb(dev: torch.device):
    return round(torch.cuda.max_memory_allocated(dev) / 2**20) if dev.type == "cuda" else "n/a"


def _free(dev: torch.device) -> None:
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def _error(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg[:300]}"


def _random_images(n: int, size: int, seed: int, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def random_wide_resnet(depth: int, folder: Path) -> Path:
    """A randomly initialised WideResNet(depth) saved as a torchvision-layout state dict (features.load_wide_resnet
    reads it like the ImageNet file: same names and shapes, so the same compute)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = features.WideResNet(depth)
    path = Path(folder) / f"wide_resnet{depth}_2-random.pth"
    torch.save(net.state_dict(), path)
    return path


# ---------------------------------------------------------------------------------------------- the cases
@dataclasses.dataclass
class Case:
    network: str
    detector: object          # an unfitted methods.SPR / ScoreDD / DDAD of the paper profile
    size: int                 # training and inference image size
    train_cfg: TrainConfig    # the profile's training settings (its batch size)
    infer_batch: int          # images per detector call (the profile's inference batch size)
    label: str                # what the inference row measures
    fallback: object = None   # DDAD: the same detector with the denoiser's features


def build_cases(plan: Plan, weights_dir: Path) -> list:
    """One Case per network, each from its paper profile (narrow networks at tiny sizes with --quick); a case that
    cannot be built is returned as (network, error) and becomes error rows."""
    out = []
    for network in NETWORKS:
        try:
            out.append(_case(network, plan, weights_dir))
        except Exception as e:  # noqa: BLE001
            out.append((network, _error(e)))
    return out


def _case(network: str, plan: Plan, weights_dir: Path) -> Case:
    q_size, q_net = QUICK[network]
    small = {"batch_size": 2}
    if network == "spr":
        cfg = configs.get("paper", "spr")
        if plan.quick:
            cfg = cfg.replace(size=q_size, eval_size=q_size, net_kwargs=q_net, batch_size=2, train=small)
        det = cfg.detector("mvtec", "bottle")
        return Case(network, det, cfg.size, det.train, det.batch_size,
                    f"SPR detector maps (N = {det.n}, k = {det.k:g}, {det.kernel}x{det.kernel} filter, maps at "
                    f"{det.out_size} px)")
    if network == "ncsnpp":
        cfg = configs.get("paper", "scoredd_images")
        if plan.quick:
            cfg = cfg.replace(size=q_size, net_kwargs={**cfg.net_kwargs, **q_net}, batch_size=2, train=small,
                              t_steps={k: v[:2] for k, v in cfg.t_steps.items()})
        sde, sampler = cfg.variants[0]
        det = cfg.detector(sde, sampler)
        return Case(network, det, cfg.size, det.train, det.batch_size or 1,
                    f"Score-DD detector maps ({sde.upper()} SDE, {sampler}, T = {len(det.t_steps)}, r = {det.r}, "
                    f"layers {'+'.join(det.layers or ('all',))})")
    if network == "ddad":
        cfg = configs.get("paper", "ddad")
        if plan.quick:
            cfg = cfg.replace(size=q_size, net_kwargs=q_net, test_batch_size={"default": 2}, train=small,
                              n_calibration=1, feature_extractor="wide_resnet50")   # builds in half the time
        depth = features.DEPTHS.get(cfg.feature_extractor, 101)
        base = cfg.detector("mvtec", "bottle").replace(fe_epochs=0)
        fallback = base.replace(features="denoiser", weights=None)
        try:
            det = base.replace(features=f"wide_resnet{depth}", weights=str(random_wide_resnet(depth, weights_dir)))
        except Exception as e:  # noqa: BLE001
            print(f"  ddad: no random Wide-ResNet-{depth}-2 file ({_error(e)}); the denoiser's features instead")
            det, fallback = fallback, None
        return Case(network, det, cfg.size, det.train, det.batch_size,
                    f"DDAD detector maps (w = {det.w:g}, {det.t_start // det.skip} DDIM steps, "
                    f"{_features_label(det)})", fallback)
    raise ValueError(f"unknown network {network!r}; valid: {', '.join(NETWORKS)}")


def _features_label(det) -> str:
    if det.features == "denoiser":
        return f"denoiser features {'+'.join(det.denoiser_layers)}"
    return f"{det.features.replace('wide_resnet', 'Wide-ResNet-')}-2 features, random weights"


# ---------------------------------------------------------------------------------------------- measurements
def fit_untrained(det, size: int, dev: torch.device, n: int = 4):
    """det fitted the way fit() does it, with TrainConfig(epochs=0): the profile's network with initial weights,
    moved to dev (channels_last on CUDA), the DDAD backbone loaded and D_p calibrated on n random images."""
    det = det.replace(train=det.train.replace(epochs=0))
    old = os.environ.get("SCOREVIZ_CACHE")
    with tempfile.TemporaryDirectory() as cache:   # fit's train_cached: nothing is written with 0 epochs anyway
        os.environ["SCOREVIZ_CACHE"] = cache
        try:
            return det.fit(_random_images(n, size, seed=1), device=dev, seed=0)
        finally:
            if old is None:
                os.environ.pop("SCOREVIZ_CACHE", None)
            else:
                os.environ["SCOREVIZ_CACHE"] = old


@torch.no_grad()
def time_inference(det, images: torch.Tensor, dev: torch.device, repeats: int, warmup: int = 1) -> tuple[float, object]:
    """(images/s, peak MB) of det.maps(images) over `repeats` calls after `warmup` untimed calls."""
    gen = lambda: torch.Generator(device=det.device).manual_seed(0)
    for _ in range(warmup):
        det.maps(images, generator=gen())
    _reset_peak(dev)
    t0 = time.perf_counter()
    for _ in range(repeats):
        det.maps(images, generator=gen())
    _sync(dev)
    dt = time.perf_counter() - t0
    return len(images) * repeats / dt, _peak_mb(dev)


def time_training(model: ScoreModel, cfg: TrainConfig, size: int, dev: torch.device, plan: Plan) -> dict:
    """images/s of train() over plan.timed_epochs epochs of plan.epoch_steps optimizer steps (random images) after
    one such epoch of warm-up (timed from the end-of-epoch callbacks), and the peak memory of the whole call."""
    batch = cfg.batch_size
    epochs = 1 + plan.timed_epochs
    data = _random_images(batch * plan.epoch_steps, size, seed=2)
    marks = []

    def mark(epoch, loss):
        _sync(dev)
        marks.append(time.perf_counter())

    cfg = cfg.replace(epochs=epochs)
    _reset_peak(dev)
    res = train(model, data, cfg, device=dev, progress=False, callback=mark)
    steps = plan.timed_epochs * plan.epoch_steps
    return {"img_s": steps * batch / (marks[-1] - marks[0]), "peak": _peak_mb(dev), "steps": steps,
            "loss": res.history[-1], "n_data": len(data)}


def measure(case: Case, dev: torch.device, plan: Plan, t_start: float) -> list[dict]:
    """The training row and the inference row of one network."""
    rows = []
    det, spec, fit_error = None, None, None

    def over_budget() -> bool:
        return time.perf_counter() - t_start > plan.budget_s

    base = {"network": case.network, "px": case.size}
    # -- inference (first: fit() also gives the exact network that training is timed on)
    irow = {**base, "batch": case.infer_batch, "measurement": f"inference: {case.label}", "unit": "img/s"}
    t0 = time.perf_counter()
    if over_budget():
        irow.update(value="skipped", details=f"time budget of {plan.budget_s:.0f} s reached")
    else:
        for attempt, cand in enumerate((case.detector, case.fallback)):
            if cand is None:
                continue
            try:
                det = fit_untrained(cand, case.size, dev, n=min(4, case.infer_batch) if plan.quick else 4)
                spec = model_config(det.model)
                irow["params (M)"] = round(count_parameters(det.model) / 1e6, 2)
                if attempt:
                    irow["measurement"] = (f"inference: {case.label.split(' (')[0]} ({_features_label(det)}; "
                                           f"the Wide-ResNet case failed: {fit_error})")
                images = _random_images(case.infer_batch, case.size, seed=3)
                img_s, peak = time_inference(det, images, dev, plan.repeats, plan.warmup_calls)
                irow.update(value=round(img_s, 3), **{"peak memory (MB)": peak},
                            details=f"{plan.repeats} timed call(s) of {case.infer_batch} images after "
                                    f"{plan.warmup_calls} warm-up; "
                                    "untrained weights (fit with epochs=0), float32 as the detector runs")
                fit_error = None
                break
            except Exception as e:  # noqa: BLE001
                fit_error = _error(e)
                irow.update(value="error", details=fit_error)
                if os.environ.get("BENCH_GPU_TRACEBACK"):
                    traceback.print_exc()
            finally:
                det = None
                _free(dev)
    irow["wall_s"] = round(time.perf_counter() - t0, 1)     # fit included; printed, not in the table
    rows.append(irow)
    # -- training
    cfg = case.train_cfg
    trow = {**base, "batch": cfg.batch_size, "unit": "img/s", "measurement": f"training: train() ({_recipe(cfg, dev)})"}
    t0 = time.perf_counter()
    if over_budget():
        trow.update(value="skipped", details=f"time budget of {plan.budget_s:.0f} s reached")
    elif spec is None:
        trow.update(value="error", details=f"no network: the detector's fit failed ({fit_error})")
    else:
        try:
            net_spec = dict(spec["net"])
            net = build(net_spec.pop("preset"), **{k: tuple(v) if isinstance(v, list) else v
                                                   for k, v in net_spec.items()})
            model = ScoreModel(net, _sde_of(spec), spec["output"])
            trow["params (M)"] = round(count_parameters(model) / 1e6, 2)
            r = time_training(model, cfg, case.size, dev, plan)
            trow.update(value=round(r["img_s"], 3), **{"peak memory (MB)": r["peak"]},
                        details=f"{r['steps']} timed steps after {plan.epoch_steps} warm-up; lr {cfg.lr:g}, "
                                f"EMA {cfg.ema_decay:g}, grad_clip {cfg.grad_clip}, loss {cfg.loss_reduce}; "
                                f"peak incl. EMA copy, AdamW state and {r['n_data']} random images on the device")
        except Exception as e:  # noqa: BLE001
            trow.update(value="error", details=_error(e))
            if os.environ.get("BENCH_GPU_TRACEBACK"):
                traceback.print_exc()
        finally:
            model = net = None
            _free(dev)
    trow["wall_s"] = round(time.perf_counter() - t0, 1)
    rows.insert(0, trow)
    return rows


def _recipe(cfg: TrainConfig, dev: torch.device) -> str:
    """What train() does with cfg on dev (its defaults: bf16 autocast and channels_last on CUDA; fused AdamW on CUDA)."""
    cuda = dev.type == "cuda"
    amp = cuda if cfg.amp is None else cfg.amp
    channels_last = cuda if cfg.channels_last is None else cfg.channels_last
    parts = ["bf16 autocast" if amp else "float32", *(["channels_last"] if channels_last else []),
             "fused AdamW" if cuda else "AdamW"]
    return ", ".join(parts)


def _sde_of(spec: dict):
    """The SDE of a train.model_config (as train.load_score_model rebuilds it)."""
    sde_cfg = dict(spec["sde"])
    return get_sde({"VESDE": "ve", "VPSDE": "vp", "SubVPSDE": "subvp", "SPRSDE": "spr"}[sde_cfg.pop("name")], **sde_cfg)


def measure_all(dev: torch.device, plan: Plan) -> list[dict]:
    """Both rows of every network; on the CPU with one thread (benchmarks.device_threads: on a shared CPU more
    threads mostly measure the neighbours' load: --quick took 9 s with 1 thread, 110 s with 2 on a busy 2-core VM)."""
    t_start = time.perf_counter()
    rows = []
    with device_threads(dev.type), tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        for case in build_cases(plan, Path(tmp)):
            if isinstance(case, tuple):
                network, err = case
                rows += [{"network": network, "measurement": f"{what}: could not build the paper-profile case",
                          "value": "error", "details": err} for what in ("training", "inference")]
                continue
            print(f"measuring {case.network} at {case.size} px ...", flush=True)
            for row in measure(case, dev, plan, t_start):
                print("  ", row, flush=True)
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- report
def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def report(rows: list[dict], dev: torch.device, plan: Plan, command: str, elapsed: float) -> str:
    info = machine_info()
    cuda = ""
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        cuda = (f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
                f"{props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs")
    threads = "1 CPU thread, " if dev.type == "cpu" else ""
    head = (f"\n## GPU check ({device_name(dev)}, {datetime.datetime.now():%Y-%m-%d %H:%M})\n\n"
            f"CPU {info['cpu']}, {threads}python {info['python']}, torch {info['torch']}{cuda}, "
            f"commit {info.get('commit', '?')}, command `{command}`, {elapsed:.0f} s.\n")
    if plan.quick:
        head += ("\n--quick: tiny images and narrow networks, batch 2, one timed step: a test of the script, "
                 "not a measurement of the paper networks.\n")
    errors = sum(r.get("value") == "error" for r in rows)
    skipped = sum(r.get("value") == "skipped" for r in rows)
    foot = f"\n{len(rows)} rows, {errors} errors, {skipped} skipped.\n"
    return head + "\n" + table(rows) + foot


def resolve(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"bench_gpu: --device {device} asked for, but torch {torch.__version__} sees no CUDA device")
    return dev


def run() -> list[dict]:
    """For `python -m benchmarks`: the paper-resolution rows on CUDA (nothing without a GPU), in its row format."""
    if not torch.cuda.is_available():
        return []
    dev = torch.device("cuda")
    out = []
    for r in measure_all(dev, Plan.make(False)):
        extra = {k: r[k] for k in ("px", "batch", "params (M)", "peak memory (MB)", "details") if k in r}
        out.append({"benchmark": f"{r['network']} {r['measurement']}", "value": r.get("value"),
                    "unit": r.get("unit", ""), "device": torch.cuda.get_device_name(dev), **extra})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_gpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="cuda, cuda:N or cpu (default: cuda when available)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one step: tests the script (e.g. on a CPU)")
    ap.add_argument("--out", type=Path, default=None,
                    help="markdown file the table is appended to (default benchmarks/RESULTS.md; "
                         "--quick appends only to an --out given explicitly)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="measurements that would start after this many seconds are skipped (default 200; quick 120)")
    args = ap.parse_args(argv)
    dev = resolve(args.device)
    plan = Plan.make(args.quick, args.budget_s)
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    t0 = time.perf_counter()
    rows = measure_all(dev, plan)
    text = report(rows, dev, plan, "python -m benchmarks.bench_gpu " + " ".join(argv if argv is not None
                                                                                else sys.argv[1:]),
                  time.perf_counter() - t0)
    print(text)
    if out is not None:
        out = Path(out)
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("# Benchmark results\n\nAppended by `python -m benchmarks`; newest last.\n")
        with open(out, "a") as f:
            f.write(text)
        print(f"appended {len(rows)} rows to {out}")
    else:
        print("--quick without --out: nothing appended")
    errors = sum(r.get("value") == "error" for r in rows)
    print(f"bench_gpu: {len(rows)} rows, {errors} errors, device {device_name(dev)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
