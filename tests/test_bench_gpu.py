"""benchmarks/bench_gpu.py and benchmarks/gpu_check.sh, and the GPU-only tests that gpu_check.sh runs.

On the CPU: bench_gpu in --quick mode writes a table with a row per network and per detector; a failing
measurement becomes a row; quick runs append nothing unless --out is given; the shell script parses and its
test selection finds the CUDA tests; DDP with one process on gloo (the script of the CUDA DDP test).
CUDA only (each skips itself without a GPU; gpu_check.sh selects them by the "cuda" in their names):
train() with its CUDA defaults (bf16 autocast, channels_last, fused AdamW), torch.compile of a score
network, DDP with one process on NCCL.
"""
import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import bench_gpu
from scoreviz.nets import ScoreModel, build
from scoreviz.sde import VPSDE
from scoreviz.train import TrainConfig, dsm_loss, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _rows(text: str) -> list[dict]:
    """The data rows of the last bench_gpu table in text, as {column: cell}."""
    block = text[text.rindex("## GPU check ("):]
    lines = [l for l in block.splitlines() if l.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in l.strip("|").split("|")))) for l in lines[1:]]


def test_quick_bench_has_a_row_per_network_and_detector(tmp_path):
    out = tmp_path / "RESULTS.md"
    assert bench_gpu.main(["--quick", "--device", "cpu", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Benchmark results")
    assert re.search(r"^## GPU check \(CPU: .+, \d{4}-\d\d-\d\d \d\d:\d\d\)$", text, re.MULTILINE)
    assert "torch " + torch.__version__ in text and "--quick" in text
    rows = _rows(text)
    assert [r["network"] for r in rows] == ["spr", "spr", "ncsnpp", "ncsnpp", "ddad", "ddad"]
    detectors = {"spr": "SPR detector", "ncsnpp": "Score-DD detector", "ddad": "DDAD detector"}
    for network, detector in detectors.items():
        training, inference = [r for r in rows if r["network"] == network]
        assert training["measurement"].startswith("training: train()")
        assert inference["measurement"].startswith(f"inference: {detector}")
        for r in (training, inference):
            assert float(r["value"]) > 0 and r["unit"] == "img/s", r
            assert float(r["params (M)"]) > 0 and int(r["px"]) > 0 and int(r["batch"]) == 2, r
            assert r["peak memory (MB)"] == "n/a", r               # no CUDA allocator on the CPU
    assert "Wide-ResNet-50-2 features, random weights" in rows[-1]["measurement"]
    assert "6 rows, 0 errors, 0 skipped." in text


def test_full_run_measures_the_paper_profiles(tmp_path, monkeypatch):
    """Without --quick the cases are the paper profiles': resolution, training and inference batch sizes, networks,
    DDAD's Wide-ResNet-101-2 (here a stand-in path: no 500 MB file is written)."""
    monkeypatch.setattr(bench_gpu, "random_wide_resnet", lambda depth, folder: Path(folder) / f"wrn{depth}.pth")
    cases = {c.network: c for c in bench_gpu.build_cases(bench_gpu.Plan.make(False), tmp_path)}
    got = {n: (c.size, c.train_cfg.batch_size, c.infer_batch, c.detector.net) for n, c in cases.items()}
    assert got == {"spr": (192, 16, 16, "spr"), "ncsnpp": (256, 8, 4, "ncsnpp"), "ddad": (256, 32, 16, "ddad")}
    assert cases["spr"].detector.out_size == 256 and cases["spr"].detector.n == 3
    assert (cases["ncsnpp"].detector.sde, cases["ncsnpp"].detector.sampler) == ("ve", "flow")
    ddad = cases["ddad"].detector
    assert ddad.features == "wide_resnet101" and ddad.weights.endswith("wrn101.pth") and ddad.fe_epochs == 0
    assert cases["ddad"].fallback.features == "denoiser"
    assert bench_gpu._recipe(cases["spr"].train_cfg, torch.device("cuda")) == "bf16 autocast, channels_last, fused AdamW"
    assert bench_gpu._recipe(cases["spr"].train_cfg, torch.device("cpu")) == "float32, AdamW"


def test_a_failed_measurement_is_a_row_and_the_rest_still_runs(tmp_path, monkeypatch, capsys):
    calls = []

    def fit(det, size, dev, n=4):
        calls.append(det.name)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(bench_gpu, "fit_untrained", fit)
    monkeypatch.setattr(bench_gpu, "random_wide_resnet", lambda depth, folder: (_ for _ in ()).throw(OSError("disk")))
    out = tmp_path / "r.md"
    assert bench_gpu.main(["--quick", "--device", "cpu", "--out", str(out)]) == 1
    assert calls == ["spr", "scoredd", "ddad"]                   # DDAD: the denoiser-features fallback
    rows = _rows(out.read_text())
    assert len(rows) == 6 and all(r["value"] == "error" for r in rows)
    assert all("OutOfMemoryError: CUDA out of memory" in r["details"] for r in rows)
    assert "denoiser features" in rows[-1]["measurement"]
    assert "6 rows, 6 errors" in capsys.readouterr().out


def test_quick_runs_append_only_to_an_explicit_out(tmp_path, monkeypatch):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n")
    monkeypatch.setattr(bench_gpu, "RESULTS", results)
    row = {"network": "spr", "measurement": "training: x", "value": 1.0, "unit": "img/s"}
    monkeypatch.setattr(bench_gpu, "measure_all", lambda dev, plan: [dict(row)])
    assert bench_gpu.main(["--quick", "--device", "cpu"]) == 0
    assert results.read_text() == "# Benchmark results\n"
    assert bench_gpu.main(["--device", "cpu"]) == 0               # a full run appends to RESULTS.md
    assert bench_gpu.main(["--quick", "--device", "cpu", "--out", str(results)]) == 0
    assert results.read_text().count("## GPU check (") == 2
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="sees no CUDA device"):
            bench_gpu.main(["--device", "cuda"])
        assert bench_gpu.run() == []                               # `python -m benchmarks` on a CPU machine


def _gpu_only_tests() -> set:
    """Names of the tests in tests/ that a decorator mentioning CUDA skips without a GPU (e.g. skipif(not
    torch.cuda.is_available()) or this file's @cuda_only)."""
    names = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for m in re.finditer(r"((?:^@.*\n)+)def (test_\w+)", path.read_text(), re.MULTILINE):
            if "cuda" in m[1].lower():
                names.add(m[2])
    return names


def test_gpu_check_script_parses_and_selects_the_gpu_only_tests():
    """bash -n passes, and the tests that gpu_check.sh --collect-only lists hold every GPU-only test of tests/."""
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False).returncode == 0
    env = {**os.environ, "PYTHON": sys.executable}
    res = subprocess.run(["bash", str(SCRIPT), "--collect-only"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env=env, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    names = {line.split("::")[-1].split("[")[0] for line in res.stdout.splitlines() if "::" in line}
    gpu_only = _gpu_only_tests()
    assert {"test_cuda_matches_cpu", "test_cuda_train_defaults_bf16_channels_last_fused_adamw",
            "test_cuda_torch_compile_score_network", "test_cuda_ddp_one_process_nccl"} <= gpu_only
    assert gpu_only <= names, f"GPU-only tests that gpu_check.sh misses: {sorted(gpu_only - names)}"


# ---------------------------------------------------------------------------------------------- DDP, one process
_DDP = r"""
import copy, sys
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from scoreviz import train as T
from scoreviz.nets import ScoreModel, build
from scoreviz.sde import VPSDE

backend, device, folder = sys.argv[1:4]
dev = torch.device(device)
cuda = dev.type == "cuda"
if cuda:
    torch.cuda.set_device(0)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
else:
    torch.set_num_threads(1)     # a shared CPU: more threads mostly wait for the neighbours
dist.init_process_group(backend, init_method=f"file://{folder}/store", rank=0, world_size=1)
try:
    torch.manual_seed(0)
    net = build("tiny", in_channels=3, channels=(16, 32, 32), groups=8, embed_dim=32)
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # 1) a DDP-wrapped copy gives the bare network's gradients (bf16 autocast and channels_last on CUDA)
    nets = [copy.deepcopy(net).to(dev) for _ in range(2)]
    xb = x.to(dev)
    if cuda:                    # channels_last before the DDP wrap, as train() does it
        for n in nets:
            n.to(memory_format=torch.channels_last)
        xb = xb.contiguous(memory_format=torch.channels_last)
    plain = ScoreModel(nets[0], VPSDE())
    wrapped = ScoreModel(DistributedDataParallel(nets[1], device_ids=[0] if cuda else None), VPSDE())
    grads = []
    for m in (plain, wrapped):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            loss = T.dsm_loss(m, xb, generator=torch.Generator(device=dev).manual_seed(1))
        loss.backward()
        grads.append(torch.cat([p.grad.float().flatten() for p in m.parameters()]))
    rel = ((grads[0] - grads[1]).norm() / grads[0].norm()).item()
    assert torch.isfinite(grads[1]).all() and rel < 1e-3, rel
    # 2) train()'s multi-process branch (DDP wrap, batch split, all_reduce, barriers) run by this one process
    T._rank_world = lambda: (0, 2)
    wraps = []

    class Counted(DistributedDataParallel):
        def __init__(self, *args, **kwargs):
            wraps.append(kwargs.get("device_ids"))
            super().__init__(*args, **kwargs)

    torch.nn.parallel.DistributedDataParallel = Counted     # train() imports it from there when it wraps
    model = ScoreModel(copy.deepcopy(net), VPSDE())
    before = [p.detach().clone() for p in model.parameters()]
    res = T.train(model, x, T.TrainConfig(epochs=2, batch_size=4, lr=1e-3, ema_decay=0.9, checkpoint_every=1),
                  out_dir=f"{folder}/run", device=device, progress=False)
    assert len(wraps) == 1, "train() did not take its DDP branch"
    assert len(res.history) == 2 and all(torch.isfinite(torch.tensor(res.history))), res.history
    assert any(not torch.equal(b, p.detach().cpu()) for b, p in zip(before, res.model.parameters()))
    state = T.load_checkpoint(f"{folder}/run/checkpoint.pt")
    assert state["epoch"] == 2 and not any("module." in k for k in state["model"]), list(state["model"])[:3]
    T.load_score_model(f"{folder}/run/checkpoint.pt")
finally:
    dist.destroy_process_group()
print("DDP-OK", rel)
"""


def _ddp_one_process(backend: str, device: str, tmp_path) -> None:
    res = subprocess.run([sys.executable, "-c", _DDP, backend, device, str(tmp_path)], capture_output=True,
                         text=True, timeout=300, cwd=ROOT, check=False)
    assert res.returncode == 0 and "DDP-OK" in res.stdout, res.stdout + res.stderr


def test_ddp_one_process_gloo(tmp_path):
    """The CUDA DDP test's script on the CPU (gloo): it checks what it says, here too."""
    _ddp_one_process("gloo", "cpu", tmp_path)


@cuda_only
def test_cuda_ddp_one_process_nccl(tmp_path):
    _ddp_one_process("nccl", "cuda", tmp_path)


# ---------------------------------------------------------------------------------------------- CUDA only
def _setup():
    torch.manual_seed(0)
    net = build("tiny_res", in_channels=1, image_size=16, attn_res=(8,), dropout=0.0)
    data = torch.rand(10, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return ScoreModel(net, VPSDE()), data


@cuda_only
def test_cuda_train_defaults_bf16_channels_last_fused_adamw(tmp_path):
    """train() on CUDA: bf16 autocast (loss close to the float32 run's, not equal), channels_last weights, fused
    AdamW (in the checkpoint's optimizer state), float32 weights; the EMA model runs afterwards."""
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, ema_decay=0.9, checkpoint_every=1)
    ref = train(*_setup(), cfg.replace(amp=False, channels_last=False), device="cuda", progress=False)
    model, data = _setup()
    res = train(model, data, cfg, out_dir=tmp_path, device="cuda", progress=False)
    assert all(p.dtype == torch.float32 and p.is_cuda for p in res.model.parameters())
    convs = [m for m in res.model.net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert not all(m.weight.is_contiguous() for m in convs)
    assert all(torch.isfinite(torch.tensor(res.history)))
    assert res.history[0] == pytest.approx(ref.history[0], rel=0.05)   # same batches and noise (seeded generator)
    assert res.history != ref.history                                   # autocast really ran in bf16
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["optimizer"]["param_groups"][0]["fused"] is True
    with torch.no_grad():
        out = res.ema.eval()(data[:2].cuda(), torch.tensor([0.5, 0.5], device="cuda"))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@cuda_only
def test_cuda_torch_compile_score_network():
    """torch.compile of the SPR U-Net under bf16 autocast with channels_last inputs: the eager network's output,
    and training steps through it (dsm_loss, fused AdamW) change the weights. Inputs are made the way dsm_loss
    makes them (sde.perturb), so one compiled graph serves both (one compilation, forward and backward)."""
    torch.manual_seed(0)
    net = build("tiny", in_channels=3).cuda().to(memory_format=torch.channels_last)
    model, compiled = ScoreModel(net, VPSDE()), ScoreModel(torch.compile(net), VPSDE())
    x = (torch.rand(4, 3, 32, 32, device="cuda") * 2 - 1).contiguous(memory_format=torch.channels_last)
    t = torch.rand(4, device="cuda") * 0.9 + 0.05
    x_t, _ = model.sde.perturb(x, t, generator=torch.Generator(device="cuda").manual_seed(0))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ref, out = model.eps(x_t, t).float(), compiled.eps(x_t, t).float()
    assert torch.isfinite(out).all() and ((out - ref).norm() / ref.norm()).item() < 5e-2
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    before = copy.deepcopy(net.state_dict())
    for step in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = dsm_loss(compiled, x, generator=torch.Generator(device="cuda").manual_seed(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
