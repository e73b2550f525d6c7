"""Denoising score matching for every SDE, with EMA, step LR schedule, atomic checkpoints and exact resume.

Loss (SPR Eq. 4, Song et al. Eq. 7 with lambda = std^2): t ~ U(t_min, 1], x_t = a(t) x0 + std(t) z,
L = mean over the batch of sum over pixels of (std(t) s(x_t, t) + z)^2 = ||eps_hat - z||^2.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from .machine import process_alive
from .nets import ScoreModel, build
from .sde import get_sde

__all__ = ["TrainConfig", "TrainResult", "SCHEDULES", "learning_rate", "train", "train_cached", "cache_dir", "dsm_loss", "CheckpointError", "TrainingDiverged",
           "save_checkpoint", "load_checkpoint", "load_score_model", "model_config", "resolve_device", "fit_score_model"]

CKPT_NAME = "checkpoint.pt"
KEY_NAME = "key.json"           # train_cached's key of the folder's model
SCHEDULES = ("step", "cosine")
FORMAT = "scoreviz-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable, or belongs to a different configuration."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Training settings; defaults are SPR's (batch 16, AdamW lr 1e-4 wd 1e-3, EMA 0.9999)."""

    epochs: int = 3000
    batch_size: int = 16
    lr: float = 1e-4
    betas: tuple = (0.9, 0.999)
    weight_decay: float = 1e-3
    milestones: tuple = ()        # epochs at which the learning rate is multiplied by gamma
    gamma: float = 0.1
    ema_decay: float = 0.9999
    grad_clip: float | None = 1.0
    t_min: float | None = None    # default: the SDE's eps
    loss_reduce: str = "sum"      # per-sample 'sum' over pixels (SPR Eq. 4) or 'mean'
    checkpoint_every: int = 50    # epochs
    seed: int = 0
    amp: bool | None = None       # bf16 autocast; None = on for CUDA
    channels_last: bool | None = None  # None = on for CUDA
    # the fast recipe's knobs (the papers use none of them: schedule 'step', no warm-up)
    schedule: str = "step"        # 'step' (lr x gamma at the milestones) or 'cosine' (to 0 at the last step)
    warmup: int = 0               # optimizer steps of linear learning-rate warm-up
    ema_warmup: bool = False      # EMA decay min(ema_decay, (1 + n) / (10 + n)) at step n: useful from step 1

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")

    @staticmethod
    def parse_settings(pairs: list[str] | None, option: str = "--set") -> dict:
        """Command-line settings 'KEY=VALUE' (VALUE read as JSON where it parses, else as text) -> {KEY: value};
        an unknown KEY or a pair without '=' exits with a message that lists the valid keys."""
        valid = {f.name for f in dataclasses.fields(TrainConfig)}
        out = {}
        for pair in pairs or []:
            key, sep, value = pair.partition("=")
            if not sep or key not in valid:
                raise SystemExit(f"{option} takes KEY=VALUE with KEY one of: {', '.join(sorted(valid))}; got {pair!r}")
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        return out

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some settings changed (unknown names raise TypeError)."""
        return dataclasses.replace(self, **changes)

    def identity(self) -> dict:
        """The settings a resumed run must share (everything but how long and how often to save)."""
        d = dataclasses.asdict(self)
        d.pop("checkpoint_every")
        if self.schedule != "cosine":       # the cosine schedule depends on the number of epochs
            d.pop("epochs")
        for k in ("schedule", "warmup", "ema_warmup"):     # added later: at their defaults, older checkpoints and
            if d[k] == TrainConfig.__dataclass_fields__[k].default:     # cached models keep their identity
                d.pop(k)
        return json.loads(json.dumps(d))


@dataclass
class TrainResult:
    model: ScoreModel
    ema: ScoreModel
    history: list = field(default_factory=list)  # mean loss per epoch
    epoch: int = 0
    checkpoint: Path | None = None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available; use device='cpu' or 'auto'")
    return dev


def model_config(model: ScoreModel) -> dict:
    """JSON-able description from which load_score_model rebuilds the model."""
    net = model.net
    spec = getattr(net, "spec", None) or {"class": type(net).__name__}
    return json.loads(json.dumps({"net": spec, "sde": model.sde.config(), "output": model.output}))


def dsm_loss(model: ScoreModel, x0: torch.Tensor, *, t_min: float | None = None, reduce: str = "sum",
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score-matching loss of one batch x0 (B, ...), a scalar."""
    t_min = model.sde.eps if t_min is None else t_min
    t = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype) * (1 - t_min) + t_min
    x_t, z = model.sde.perturb(x0, t, generator=generator)
    err = (model.eps(x_t, t).float() - z.float()).pow(2).flatten(1)
    return (err.sum(1) if reduce == "sum" else err.mean(1)).mean()


def _remove_stale_tmp(folder: Path) -> None:
    """Delete the `.<name>.tmp-<pid>` files that save_checkpoint left when process <pid> was killed (SIGKILL
    cannot be caught) and is no longer running (machine.process_alive)."""
    for p in folder.glob(".*.tmp-*"):
        pid = p.name.rpartition(".tmp-")[2]
        if pid.isdigit() and p.is_file() and not process_alive(int(pid)):
            p.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write atomically: a temporary file in the same folder, fsync, then rename over the target. The temporary
    file is removed on any error or interrupt; those of killed processes are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except RuntimeError as e:       # Ctrl-C inside torch.save surfaces as its writer's RuntimeError: keep it Ctrl-C
        if isinstance(e.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from e
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a scoreviz checkpoint with weights_only=True; clear CheckpointError if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, wrong format, unpickling refused ...
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({type(e).__name__}); delete it or "
                              "start afresh (resume=False, CLI: --fresh), or restore a backup.") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a scoreviz checkpoint (expected format {FORMAT!r})")
    return state


def load_score_model(path: str | Path, *, ema: bool = True, device="cpu") -> ScoreModel:
    """Rebuild a ScoreModel (network from its preset, SDE from its parameters) from a checkpoint."""
    state = load_checkpoint(path)
    cfg = state["config"]["model"]
    if "preset" not in cfg["net"]:
        raise CheckpointError(f"{path}: the network was not built from a preset; build it yourself and load state['ema']")
    spec = dict(cfg["net"])
    net = build(spec.pop("preset"), **{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    sde_cfg = dict(cfg["sde"])
    sde = get_sde({"VESDE": "ve", "VPSDE": "vp", "SubVPSDE": "subvp", "SPRSDE": "spr"}[sde_cfg.pop("name")], **sde_cfg)
    model = ScoreModel(net, sde, cfg["output"])
    model.load_state_dict(state["ema" if ema else "model"])
    return model.to(device).eval()


def _diff(a: dict, b: dict, prefix="") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<missing>"), b.get(k, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: checkpoint {va!r} != now {vb!r}")
    return out


@torch.no_grad()
def learning_rate(cfg: TrainConfig, epoch: int, step: int, total: int) -> float:
    """The learning rate of optimizer step `step` (0-based, in epoch `epoch`) of `total` steps: cfg.lr stepped
    down by gamma at each milestone epoch ('step') or cosine-annealed to 0 ('cosine'), times a linear warm-up
    over the first cfg.warmup steps."""
    if cfg.schedule == "cosine":
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    else:
        lr = cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    return lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else lr


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float):
    """ema <- decay * ema + (1 - decay) * model, as one multi-tensor op (one launch on a GPU, not one per tensor)."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _training_data(data) -> torch.Tensor:
    """The (N, ...) floating tensor of data (a tensor or ImageSet), checked."""
    x = getattr(data, "images", data)
    if not torch.is_tensor(x) or x.ndim < 2 or len(x) == 0:
        raise ValueError(f"data must be a non-empty (N, ...) tensor or ImageSet, got {type(data).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"data must be a floating tensor in [-1, 1], got dtype {x.dtype}; convert 8-bit "
                         "images with x.float() / 127.5 - 1")
    if not torch.isfinite(x).all():
        raise ValueError("training data contains NaN or inf values")
    return x


def _data_hash(x: torch.Tensor) -> str:
    """Fingerprint of a data tensor (sha256 of its bytes, 16 hex digits): the data key of resume and train_cached."""
    raw = x.detach().cpu().contiguous().flatten().view(torch.uint8).numpy()
    return hashlib.sha256(raw.tobytes()).hexdigest()[:16]


def train(model: ScoreModel, data, cfg: TrainConfig, *, out_dir: str | Path | None = None, resume: bool = True,
          device="auto", progress: bool = True, callback=None) -> TrainResult:
    """Train `model` in place by DSM on data (N, ...) tensor or ImageSet; returns model, EMA copy and history.

    With out_dir, a checkpoint (model, EMA, optimizer, RNG states, config, epoch, history) is written
    atomically every cfg.checkpoint_every epochs and at the end; an existing one is resumed exactly.
    callback(epoch, loss) runs after each epoch (raise in it to stop; the last checkpoint stays).
    Under torchrun (torch.distributed initialised) the network is wrapped in DistributedDataParallel,
    each global batch of cfg.batch_size is split across the ranks, and rank 0 writes the checkpoints
    (exact resume is guaranteed for single-process runs).
    """
    x = _training_data(data)
    data_key = {"shape": list(x.shape), "sha256": _data_hash(x)}
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    rank, world = _rank_world()
    if cuda:
        x = x.to(dev)  # the whole pre-resized training set stays on the GPU
    progress = progress and rank == 0
    amp = cuda if cfg.amp is None else cfg.amp
    channels_last = (cuda if cfg.channels_last is None else cfg.channels_last) and x.ndim == 4
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                            **({"fused": True} if cuda else {}))
    step_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model.net, device_ids=[dev.index] if cuda else None)
        step_model = ScoreModel(ddp, model.sde, model.output)  # shares the parameters of model.net
    gen = torch.Generator(device=dev).manual_seed(cfg.seed + 1000 * rank)  # noise and times
    perm_gen = torch.Generator().manual_seed(cfg.seed + 1)        # shuffling
    config = {"train": cfg.identity(), "model": model_config(model), "data": data_key}
    ckpt = Path(out_dir) / CKPT_NAME if out_dir is not None else None
    history, start, last_saved = [], 0, None
    if ckpt is not None and rank == 0:
        _remove_stale_tmp(ckpt.parent)
    if ckpt is not None and ckpt.exists() and resume:
        state = load_checkpoint(ckpt)
        diff = _diff(state["config"], config)
        if diff:
            raise CheckpointError(f"{ckpt} was written with a different configuration:\n  " + "\n  ".join(diff)
                                  + "\nRestore those settings, pass resume=False (CLI: --fresh) to start afresh, "
                                  "or use another out_dir.")
        if state["epoch"] > cfg.epochs:
            n = state["epoch"]
            raise CheckpointError(f"{ckpt} is at epoch {n} but epochs={cfg.epochs}; raise epochs to more than {n} to "
                                  f"train on ({n}: use it as is), or pass resume=False (CLI: --fresh) to start afresh.")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        gen.set_state(state["rng"]["gen"])
        perm_gen.set_state(state["rng"]["perm"])
        if cuda and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        history, start = list(state["history"]), int(state["epoch"])
        last_saved = start

    def checkpoint(epoch):
        nonlocal last_saved
        last_saved = epoch
        if rank > 0:
            dist.barrier()  # wait until rank 0 has written it
            return
        rng = {"torch": torch.get_rng_state(), "gen": gen.get_state(), "perm": perm_gen.get_state()}
        if cuda:
            rng["cuda"] = torch.cuda.get_rng_state()
        save_checkpoint(ckpt, {"format": FORMAT, "epoch": epoch, "model": model.state_dict(), "ema": ema.state_dict(),
                               "optimizer": opt.state_dict(), "rng": rng, "config": config, "history": history})
        if world > 1:
            dist.barrier()

    n = len(x)
    bar = tqdm(range(start, cfg.epochs), desc="train", disable=not progress, initial=start, total=cfg.epochs,
               leave=False)
    model.train()
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    for epoch in bar:
        total, count = 0.0, 0
        for i, idx in enumerate(torch.randperm(n, generator=perm_gen).split(cfg.batch_size)):
            step = epoch * steps_per_epoch + i
            lr = learning_rate(cfg, epoch, step, cfg.epochs * steps_per_epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            if world > 1:
                if len(idx) < world:
                    continue  # every rank needs a sample
                idx = idx[rank::world]
            xb = x[idx.to(x.device)].to(dev, non_blocking=True)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                loss = dsm_loss(step_model, xb, t_min=cfg.t_min, reduce=cfg.loss_reduce, generator=gen)
            stats = torch.stack([loss.detach().float() * len(idx), torch.tensor(float(len(idx)), device=dev)])
            if world > 1:
                dist.all_reduce(stats)  # every rank sees the global loss, so all stop together on NaN
            if not torch.isfinite(stats[0]):
                where = f"{ckpt} (epoch {last_saved})" if last_saved else "none written yet"
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {epoch + 1}, lr {lr:g}; last good checkpoint: {where}. "
                    "Lower the learning rate or set grad_clip, and check the data.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            _ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)) if cfg.ema_warmup else cfg.ema_decay)
            total, count = total + stats[0].item(), count + stats[1].item()
        history.append(total / count)
        bar.set_postfix(loss=f"{history[-1]:.4g}", lr=f"{lr:g}")
        done = epoch + 1
        if ckpt is not None and (done % cfg.checkpoint_every == 0 or done == cfg.epochs):
            checkpoint(done)
        if callback is not None:
            callback(done, history[-1])
    bar.close()
    model.eval()
    return TrainResult(model, ema, history, len(history), ckpt)


def cache_dir() -> Path:
    """Where train_cached keeps models: $SCOREVIZ_CACHE, else ~/.cache/scoreviz/models."""
    return Path(os.environ.get("SCOREVIZ_CACHE", Path.home() / ".cache" / "scoreviz" / "models"))


def train_cached(model: ScoreModel, data, cfg: TrainConfig, *, tag: str = "model", root: str | Path | None = None,
                 device="auto", progress: bool = True) -> TrainResult:
    """train() into a folder named by a hash of (model, SDE, training settings, epochs, data).

    The same model on the same data is trained once and reused by every notebook; an interrupted
    training resumes from its checkpoint. The folder is root/<tag>-<hash12>. A longer run of a model whose
    learning rate does not depend on the run's length (any schedule but 'cosine') starts from the longest
    finished shorter run of it in root (copied, exact: the same weights as training from scratch).
    """
    x = _training_data(data)
    key = {"model": model_config(model), "train": cfg.identity(), "epochs": cfg.epochs,
           "data": [list(x.shape), _data_hash(x)]}
    text = json.dumps(key, sort_keys=True)
    out = Path(root or cache_dir()) / f"{tag}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
    if not (out / CKPT_NAME).exists():
        out.mkdir(parents=True, exist_ok=True)
        (out / KEY_NAME).write_text(text)
        if cfg.schedule != "cosine":
            _start_from_shorter_run(out, json.loads(text))
    return train(model, x, cfg, out_dir=out, device=device, progress=progress)


def _start_from_shorter_run(out: Path, key: dict) -> None:
    """Copy into `out` the checkpoint of the longest finished run in out's parent folder that differs from `key`
    only by fewer epochs (`key` as read back from key.json); train() then resumes it. Unreadable keys and
    checkpoints are passed over."""
    best, best_epochs = None, 0
    for other in out.parent.glob(f"*/{KEY_NAME}"):
        ckpt = other.parent / CKPT_NAME
        try:
            k = json.loads(other.read_text())
            e = k["epochs"]
            if {**k, "epochs": key["epochs"]} != key or not best_epochs < e < key["epochs"] or not ckpt.exists() \
                    or load_checkpoint(ckpt)["epoch"] != e:
                continue
        except (OSError, ValueError, KeyError, TypeError, CheckpointError):
            continue
        best, best_epochs = ckpt, e
    if best is not None:
        tmp = out / f".{CKPT_NAME}.tmp-{os.getpid()}"
        shutil.copyfile(best, tmp)
        os.replace(tmp, out / CKPT_NAME)


def fit_score_model(preset: str, sde, images: torch.Tensor, cfg: TrainConfig, *, net_kwargs: dict | None = None,
                    output: str = "std", seed: int = 0, device="auto", tag: str = "model", root=None,
                    progress: bool = False) -> TrainResult:
    """The one way every detector gets a trained score model: build the preset network with initial weights
    drawn from `seed` (the global RNG is left untouched), train it by DSM with train_cached (cfg with its
    seed set to `seed`); the result's .ema is the EMA model in eval mode on `device`, .history the losses.

    images (N, C, H, W): the normal training images; in_channels follows them. output: 'std' (the network
    predicts std * score) or 'eps' (it predicts the noise, DDPM).
    """
    dev = resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build(preset, **{**(net_kwargs or {}), "in_channels": images.shape[1]})
    model = ScoreModel(net, sde, output=output)
    cfg = dataclasses.replace(cfg, seed=seed)
    result = train_cached(model, images, cfg, tag=tag, root=root, device=dev, progress=progress)
    result.ema = result.ema.to(dev).eval()
    return result
