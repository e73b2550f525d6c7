"""Peak memory of one DSM training step and of one detection per method, per network and resolution.

CUDA: torch.cuda.max_memory_allocated around the step. CPU: each case runs in a fresh Python process and
reports its peak resident memory (ru_maxrss) during the step minus its resident memory just before it
(model, optimiser and inputs already allocated), so the rows are the step's own working memory.
"""
from __future__ import annotations

import json
import subprocess
import sys

import torch

#: (label, preset, channels, size, batch, what, device); what = train | spr (N = 3) | scoredd (T = 5, r = 1)
CASES = [
    ("small network", "tiny", 1, 32, 16, "train", "cpu"),
    ("small network", "tiny", 1, 32, 16, "spr", "cpu"),
    ("small network", "tiny", 1, 32, 16, "scoredd", "cpu"),
    ("SPR paper network", "spr", 3, 192, 2, "train", "cpu"),
    ("SPR paper network", "spr", 3, 192, 2, "spr", "cpu"),
    ("SPR paper network", "spr", 3, 192, 16, "train", "cuda"),
    ("SPR paper network", "spr", 3, 192, 16, "spr", "cuda"),
    ("Score-DD paper network", "ncsnpp", 3, 256, 4, "scoredd", "cuda"),
]

_CHILD = r"""
import json, resource, sys, torch
from scoreviz import nets, scoredd, spr
from scoreviz.sde import VPSDE
from scoreviz.train import dsm_loss
preset, channels, size, batch, what, device = json.loads(sys.argv[1])
torch.manual_seed(0)
dev = torch.device(device)
model = nets.ScoreModel(nets.build(preset, in_channels=channels), VPSDE(N=2000)).to(dev)
x = torch.rand(batch, channels, size, size, device=dev) * 2 - 1
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
def step():
    if what == "train":
        loss = dsm_loss(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    elif what == "spr":
        with torch.no_grad():
            spr.restoration_error(model, x, model.sde, 1e-3, 3)
    else:
        layers = {"tiny": ["enc0", "enc2"], "ncsnpp": ["down2", "up4"]}[preset]
        scoredd.anomaly_maps(model.eval(), x, model.sde, [0.125, 0.1, 0.075, 0.05, 0.025], 1, layers)
if dev.type == "cuda":
    step()                                        # warm-up (cuDNN workspaces), then the measured step
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step(); torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
else:
    before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"peak_mb": peak / 2**20, "params_M": nets.count_parameters(model) / 1e6}))
"""


def _case(label, preset, channels, size, batch, what, device) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([preset, channels, size, batch, what, device])],
                         capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    name = {"train": "one DSM training step", "spr": "SPR detection (N = 3)",
            "scoredd": "Score-DD detection (T = 5, r = 1)"}[what]
    return {"benchmark": f"peak memory, {name}: {label} {preset} ({res['params_M']:.2f}M params) {size}px batch {batch}",
            "value": round(res["peak_mb"], 1), "unit": "MB", "device": device,
            "method": "max_memory_allocated" if device == "cuda" else "peak RSS of a fresh process minus RSS before the step"}


def run() -> list[dict]:
    return [_case(*c) for c in CASES if c[-1] == "cpu" or torch.cuda.is_available()]


if __name__ == "__main__":
    for row in run():
        print(row)
