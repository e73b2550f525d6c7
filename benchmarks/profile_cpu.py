"""Where the time goes: torch.profiler over one DSM training step and one SPR restoration-error batch.

    python benchmarks/profile_cpu.py [--size 64] [--preset tiny] [--threads 1]
Prints the top operators by self CPU time; the notes in benchmarks/PROFILE.md come from this.
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from scoreviz.nets import ScoreModel, build
from scoreviz.sde import SPRSDE
from scoreviz.spr import restoration_error
from scoreviz.train import dsm_loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = ScoreModel(build(a.preset), SPRSDE())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1

    def train_step():
        loss = dsm_loss(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            train_step()
    print(f"== DSM training step, {a.preset} {a.size}px batch {a.batch}, {a.threads} thread(s)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.top))
    model.eval()
    with torch.no_grad():
        restoration_error(model, x, model.sde, n=3)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            restoration_error(model, x, model.sde, n=3)
    print(f"== SPR restoration error N=3, {a.preset} {a.size}px batch {a.batch}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.top))


if __name__ == "__main__":
    main()
