import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scoreviz.nets import ScoreModel, build
from scoreviz.sde import VESDE, VPSDE
from scoreviz.toys import scoredd_mixture
from scoreviz.train import (CheckpointError, TrainConfig, TrainingDiverged, learning_rate, load_checkpoint,
                            load_score_model, save_checkpoint, train, train_cached)


def test_mlp_dsm_approximates_exact_mixture_score():
    """An MLP trained by DSM on the Score-DD mixture approximates the exact score of p_t."""
    torch.manual_seed(0)
    gm, sde = scoredd_mixture(), VESDE(0.1, 20.0, N=100)
    data = gm.sample(10000, generator=torch.Generator().manual_seed(0))
    model = ScoreModel(build("mlp"), sde)
    res = train(model, data, TrainConfig(epochs=25, batch_size=256, lr=2e-3, ema_decay=0.99, weight_decay=0.0),
                progress=False)
    assert res.history[-1] < res.history[0]
    g = torch.Generator().manual_seed(1)
    x0 = gm.sample(2000, generator=g)
    t = torch.rand(2000, generator=g) * 0.99 + 0.01
    xt, _ = sde.perturb(x0, t, generator=g)
    with torch.no_grad():
        est = res.ema(xt, t)
    std = sde.marginal_std(t)[:, None]
    exact = gm.score(xt, t, sde)
    rel = (((est - exact) * std).pow(2).sum(1).mean() / (exact * std).pow(2).sum(1).mean()).sqrt().item()
    print(f"relative error of std * score: {rel:.3f}")
    assert rel < 0.2


def _small_setup(dropout=0.1):
    torch.manual_seed(0)
    net = build("tiny_res", in_channels=1, image_size=16, attn_res=(8,), dropout=dropout)
    data = torch.rand(10, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return ScoreModel(net, VPSDE()), data


CFG = dict(epochs=4, batch_size=4, lr=1e-3, ema_decay=0.9, checkpoint_every=1, milestones=(3,))


@pytest.mark.parametrize("recipe", [{}, {"schedule": "cosine", "warmup": 3, "ema_warmup": True}],
                         ids=["paper-step", "fast-cosine"])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, recipe):
    cfg = TrainConfig(**CFG, **recipe)
    model, data = _small_setup()
    full = train(model, data, cfg, out_dir=tmp_path / "a", progress=False)

    def stop_after_two(epoch, loss):
        if epoch == 2:
            raise KeyboardInterrupt

    model, data = _small_setup()
    with pytest.raises(KeyboardInterrupt):
        train(model, data, cfg, out_dir=tmp_path / "b", progress=False, callback=stop_after_two)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 2
    model, data = _small_setup()  # a fresh process would rebuild from scratch
    resumed = train(model, data, cfg, out_dir=tmp_path / "b", progress=False)
    assert resumed.history == full.history and resumed.epoch == 4
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    # the saved EMA rebuilds into a working score model
    loaded = load_score_model(tmp_path / "b" / "checkpoint.pt")
    x, t = data[:2], torch.tensor([0.5, 0.5])
    with torch.no_grad():
        assert torch.allclose(loaded(x, t), resumed.ema.eval()(x, t), atol=1e-6)


def test_resume_with_different_config_is_refused(tmp_path):
    model, data = _small_setup()
    train(model, data, TrainConfig(**{**CFG, "epochs": 1}), out_dir=tmp_path, progress=False)
    model, data = _small_setup()
    with pytest.raises(CheckpointError, match=r"train\.lr: checkpoint 0\.001 != now 0\.01"):
        train(model, data, TrainConfig(**{**CFG, "lr": 1e-2}), out_dir=tmp_path, progress=False)
    # longer training of the same run is a resume, not a mismatch
    model, data = _small_setup()
    res = train(model, data, TrainConfig(**{**CFG, "epochs": 2}), out_dir=tmp_path, progress=False)
    assert res.epoch == 2


def test_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path):
    model, data = _small_setup()
    train(model, data, TrainConfig(**{**CFG, "epochs": 1}), out_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="unreadable or corrupt"):
        train(*_small_setup(), TrainConfig(**CFG), out_dir=tmp_path, progress=False)
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a scoreviz checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("content", [b"", b"garbage, not a zip", None], ids=["empty", "garbage", "truncated"])
def test_train_on_corrupt_checkpoint_raises_checkpoint_error(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    train(*_small_setup(), TrainConfig(**{**CFG, "epochs": 1}), out_dir=tmp_path, progress=False)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2] if content is None else content)
    with pytest.raises(CheckpointError, match=f"{path}.*unreadable or corrupt"):
        train(*_small_setup(), TrainConfig(**CFG), out_dir=tmp_path, progress=False)
    res = train(*_small_setup(), TrainConfig(**{**CFG, "epochs": 1}), out_dir=tmp_path, resume=False, progress=False)
    assert res.epoch == 1 and load_checkpoint(path)["epoch"] == 1


def test_resume_refuses_fewer_epochs_than_the_checkpoint(tmp_path):
    train(*_small_setup(), TrainConfig(**{**CFG, "epochs": 3}), out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"epoch 3 but epochs=2.*more than 3.*resume=False \(CLI: --fresh\)"):
        train(*_small_setup(), TrainConfig(**{**CFG, "epochs": 2}), out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"pass resume=False \(CLI: --fresh\) to start afresh, or use another "
                                              r"out_dir"):
        train(*_small_setup(), TrainConfig(**{**CFG, "lr": 1e-2}), out_dir=tmp_path, progress=False)
    assert train(*_small_setup(), TrainConfig(**{**CFG, "epochs": 3}), out_dir=tmp_path, progress=False).epoch == 3


def test_mirrored_data_is_other_data_for_resume_and_cache(tmp_path):
    """Same shape and pixel sum, other images: neither resumed nor served from the cache."""
    model, data = _small_setup(dropout=0.0)
    mirrored = data.flip(-1)
    assert round(float(mirrored.double().sum()), 3) == round(float(data.double().sum()), 3)
    cfg = TrainConfig(**{**CFG, "epochs": 1})
    train(model, data, cfg, out_dir=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="data"):
        train(_small_setup(dropout=0.0)[0], mirrored, cfg, out_dir=tmp_path / "run", progress=False)
    train_cached(_small_setup(dropout=0.0)[0], data, cfg, tag="t", root=tmp_path / "cache")
    train_cached(_small_setup(dropout=0.0)[0], mirrored, cfg, tag="t", root=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", {"format": "x", "v": torch.ones(2)})

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"v": torch.zeros(2)})
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(2))


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["oserror", "interrupt"])
def test_failed_checkpoint_save_leaves_no_temporary_file(tmp_path, monkeypatch, error):
    def broken_save(obj, f):
        f.write(b"partial")
        raise error

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(type(error)):
        save_checkpoint(tmp_path / "c.pt", {"v": torch.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_inside_torch_save_stays_a_keyboard_interrupt(tmp_path, monkeypatch):
    """Seen in a probe: Ctrl-C inside torch.save came out as the zip writer's RuntimeError ('enforce fail ...'),
    so the CLI printed an error instead of 'interrupted'."""
    def interrupted_save(obj, f):
        f.write(b"partial")
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos") from None

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c.pt", {"v": torch.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    """A SIGKILL during a save leaves .checkpoint.pt.tmp-<pid>: the next save, or run, in that folder removes
    it when <pid> is not running; those of running processes and other files are kept."""
    stale, live, other = (tmp_path / n for n in (f".checkpoint.pt.tmp-{_dead_pid()}",
                                                  f".checkpoint.pt.tmp-{os.getppid()}", ".notes.tmp-x"))
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    save_checkpoint(tmp_path / "c.pt", {"v": torch.zeros(2)})
    assert not stale.exists() and live.exists() and other.exists()
    cfg = TrainConfig(**{**CFG, "epochs": 1})
    train(*_small_setup(), cfg, out_dir=tmp_path, progress=False)
    stale.write_bytes(b"partial")
    train(*_small_setup(), cfg, out_dir=tmp_path, progress=False)      # complete already: saves nothing
    assert not stale.exists() and live.exists() and other.exists()


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    model, data = _small_setup()
    calls = {"n": 0}
    eps = model.eps

    def poisoned(x, t):
        calls["n"] += 1
        out = eps(x, t)
        return out * float("nan") if calls["n"] > 6 else out  # 3 batches per epoch: NaN in epoch 3

    model.eps = poisoned
    with pytest.raises(TrainingDiverged, match=r"epoch 3.*checkpoint\.pt \(epoch 2\)"):
        train(model, data, TrainConfig(**CFG), out_dir=tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2


def test_bad_data():
    model, _ = _small_setup()
    with pytest.raises(ValueError, match="NaN"):
        train(model, torch.full((2, 1, 16, 16), float("nan")), TrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match="non-empty"):
        train(model, [1, 2], TrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match=r"floating tensor in \[-1, 1\].*x.float\(\) / 127.5 - 1"):
        train(model, torch.zeros(2, 1, 16, 16, dtype=torch.uint8), TrainConfig(epochs=1), progress=False)


def test_train_cached_reuses_the_same_model(tmp_path):
    model, data = _small_setup(dropout=0.0)
    cfg = TrainConfig(**{**CFG, "epochs": 2})
    first = train_cached(model, data, cfg, tag="t", root=tmp_path)
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("t-")
    model2, _ = _small_setup(dropout=0.0)
    second = train_cached(model2, data, cfg, tag="t", root=tmp_path)  # loads, trains nothing
    assert second.history == first.history
    for a, b in zip(first.ema.state_dict().values(), second.ema.state_dict().values()):
        assert torch.equal(a, b)
    model3, _ = _small_setup(dropout=0.0)
    train_cached(model3, data, TrainConfig(**{**CFG, "epochs": 3}), tag="t", root=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # other epochs: another model


@pytest.mark.parametrize("recipe", [{"warmup": 3, "ema_warmup": True}, {"schedule": "cosine"}],
                         ids=["step", "cosine"])
def test_a_longer_run_starts_from_the_shorter_one_unless_its_lr_depends_on_the_length(tmp_path, monkeypatch, recipe):
    """train_cached with more epochs continues a finished shorter run of the same model and data (step schedule,
    its milestone at epoch 3 crossed by the extension), with the same weights and losses as 4 epochs from
    scratch. A cosine schedule depends on the run's length, so its longer run starts afresh."""
    import scoreviz.train as train_module

    starts, real_train = [], train_module.train

    def spy(model, x, cfg, *, out_dir, **kw):            # the epoch each call of train() starts from
        ckpt = Path(out_dir) / "checkpoint.pt"
        starts.append(load_checkpoint(ckpt)["epoch"] if ckpt.exists() else 0)
        return real_train(model, x, cfg, out_dir=out_dir, **kw)

    monkeypatch.setattr(train_module, "train", spy)
    model, data = _small_setup()
    cache = tmp_path / "cache"
    shorter = train_cached(model, data, TrainConfig(**{**CFG, "epochs": 2}, **recipe), tag="t", root=cache)
    train_cached(_small_setup()[0], data * 0.5, TrainConfig(**CFG, **recipe), tag="t", root=cache)  # other data
    (cache / "t-broken").mkdir()
    (cache / "t-broken" / "key.json").write_text("{half a key")                     # passed over
    longer = train_cached(_small_setup()[0], data, TrainConfig(**CFG, **recipe), tag="t", root=cache)
    fresh = train_cached(_small_setup()[0], data, TrainConfig(**CFG, **recipe), tag="t", root=tmp_path / "alone")
    assert starts == [0, 0, 0 if recipe.get("schedule") == "cosine" else 2, 0]
    assert longer.history == fresh.history and len(longer.history) == 4
    for a, b in zip(longer.ema.state_dict().values(), fresh.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert (longer.history[:2] == shorter.history) == (recipe.get("schedule") != "cosine")


def test_gpu_settings_bf16_and_channels_last_train_on_cpu(tmp_path):
    """The CUDA defaults (bf16 autocast, channels_last) forced on the CPU: weights stay float32, the loss stays
    finite and close to the float32 run's first epoch, and the EMA model works in float32 afterwards."""
    model, data = _small_setup(dropout=0.0)
    cfg = dict(CFG, epochs=2, milestones=())
    ref = train(model, data, TrainConfig(**cfg), progress=False)
    model, data = _small_setup(dropout=0.0)
    res = train(model, data, TrainConfig(**cfg, amp=True, channels_last=True), out_dir=tmp_path, progress=False)
    assert all(p.dtype == torch.float32 for p in res.model.parameters())
    assert all(torch.isfinite(torch.tensor(res.history)))
    assert res.history[0] == pytest.approx(ref.history[0], rel=0.05)   # same batches and noise, bf16 arithmetic
    assert res.history != ref.history                                   # autocast really ran in bf16
    with torch.no_grad():
        out = res.ema.eval()(data[:2], torch.tensor([0.5, 0.5]))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2


def test_learning_rate_schedules():
    """Closed forms: step decay at the milestones; cosine lr/2 halfway and 0 at the end; linear warm-up."""
    step = TrainConfig(lr=1.0, milestones=(2, 4), gamma=0.5)
    assert [learning_rate(step, e, 10 * e, 60) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cos = TrainConfig(lr=2.0, schedule="cosine")
    assert (learning_rate(cos, 0, 0, 100), learning_rate(cos, 5, 50, 100), learning_rate(cos, 9, 100, 100)) == \
        (2.0, pytest.approx(1.0), pytest.approx(0.0, abs=1e-12))
    warm = TrainConfig(lr=1.0, warmup=4)
    assert [learning_rate(warm, 0, s, 100) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="unknown schedule 'linear'; valid: step, cosine"):
        TrainConfig(schedule="linear")


def test_recipe_settings_and_identity():
    """The recipe's knobs change training; at their defaults they leave a configuration's identity (the key of
    checkpoints and cached models) as it was before they existed; a cosine run's identity includes its length."""
    assert set(TrainConfig().identity()) == {"batch_size", "lr", "betas", "weight_decay", "milestones", "gamma",
                                             "ema_decay", "grad_clip", "t_min", "loss_reduce", "seed", "amp",
                                             "channels_last"}
    cos = TrainConfig(schedule="cosine", epochs=7).identity()
    assert cos["schedule"] == "cosine" and cos["epochs"] == 7
    runs = {}
    for name, recipe in {"paper": {}, "warm": {"ema_warmup": True}, "cosine": {"schedule": "cosine"}}.items():
        model, data = _small_setup(dropout=0.0)
        runs[name] = train(model, data, TrainConfig(**{**CFG, "ema_decay": 0.999, **recipe}), progress=False)
    init = _small_setup(dropout=0.0)[0].state_dict()
    moved = {name: sum((a - b).abs().sum().item() for a, b in zip(r.ema.state_dict().values(), init.values()))
             for name, r in runs.items()}
    assert moved["warm"] > 10 * moved["paper"]      # EMA 0.999 over 12 steps barely leaves the initial weights
    assert runs["cosine"].history != runs["paper"].history
