"""DSM training throughput (images/s) per network preset and resolution, with and without torch.compile.

The compiled rows time the same steps after compilation; the compile time (first step) is reported beside.
"""
from __future__ import annotations

import time

import torch

from scoreviz.nets import ScoreModel, build, count_parameters
from scoreviz.sde import SPRSDE
from scoreviz.train import dsm_loss

#: (preset, image size, batch, device, torch.compile, timed steps)
CASES = [("tiny", 32, 16, "cpu", False, 20), ("tiny", 32, 16, "cpu", True, 20), ("tiny", 64, 16, "cpu", False, 20),
         ("spr", 192, 16, "cpu", False, 2),
         ("spr", 192, 16, "cuda", False, 20), ("spr", 192, 16, "cuda", True, 20)]
#: MVTec AD's normal training images per category, on average (3629 images / 15 categories)
MVTEC_MEAN_TRAIN = 3629 / 15
EPOCHS = 3000                # SPR's training length (paper profile)


def _throughput(preset, size, batch, device, compiled, steps):
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    model = ScoreModel(build(preset), SPRSDE()).to(dev)
    if cuda:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **({"fused": True} if cuda else {}))
    if compiled:
        model.net = torch.compile(model.net)
    x = torch.rand(batch, 3, size, size, device=dev) * 2 - 1
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            loss = dsm_loss(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    step()  # warm-up (and compilation)
    first = time.perf_counter() - t0
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    row = {"benchmark": f"DSM train {preset} ({count_parameters(model) / 1e6:.1f}M params) {size}px batch {batch}"
                        + (", torch.compile" if compiled else ""),
           "value": round(steps * batch / dt, 2), "unit": "img/s", "device": device}
    if compiled:
        row["compile_s"] = round(first, 1)
    if preset == "spr":       # SPR's paper-profile training of one MVTec category, extrapolated from these steps
        row[f"hours_for_{EPOCHS}_epochs_of_{MVTEC_MEAN_TRAIN:.0f}_images"] = round(
            EPOCHS * MVTEC_MEAN_TRAIN / row["value"] / 3600, 1)
    if cuda:
        row["peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        row["amp"] = "bf16, channels_last, fused AdamW"
    return row


def run() -> list[dict]:
    rows = []
    for preset, size, batch, device, compiled, steps in CASES:
        if device == "cuda" and not torch.cuda.is_available():
            continue
        rows.append(_throughput(preset, size, batch, device, compiled, steps))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
