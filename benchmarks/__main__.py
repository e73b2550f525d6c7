"""Run every benchmarks/bench_*.py (or those named) and append the rows to benchmarks/RESULTS.md.

    python -m benchmarks                 # all
    python -m benchmarks train metrics   # only bench_train.py and bench_metrics.py
"""
from __future__ import annotations

import datetime
import importlib
import os
import sys
from pathlib import Path

import torch

from scoreviz.machine import machine_info

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> None:
    mods = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if names:
        unknown = [n for n in names if f"bench_{n}" not in mods]
        if unknown:
            sys.exit(f"unknown benchmark(s) {unknown}; valid: {[m[6:] for m in mods]}")
        mods = [f"bench_{n}" for n in names]
    torch.set_num_threads(os.cpu_count() or 1)
    load = os.getloadavg()
    rows = []
    for m in mods:
        print(f"running {m} ...", flush=True)
        for row in importlib.import_module(f"benchmarks.{m}").run():
            print("  ", row, flush=True)
            rows.append((m, row))
    info = machine_info()
    head = (f"\n## {datetime.datetime.now():%Y-%m-%d %H:%M} — {info['cpu']}, GPU: {info['gpu']}\n\n"
            f"python {info['python']}, torch {info['torch']}, commit {info.get('commit', '?')}, "
            f"command `python -m benchmarks {' '.join(names)}`, load average before the run "
            f"{load[0]:.2f} (other processes on the machine)\n\n"
            "| file | benchmark | value | unit | details |\n|---|---|---|---|---|\n")
    lines = []
    for m, r in rows:
        extra = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("benchmark", "value", "unit"))
        lines.append(f"| {m} | {r['benchmark']} | {r['value']} | {r['unit']} | {extra} |\n")
    results = HERE / "RESULTS.md"
    if not results.exists():
        results.write_text("# Benchmark results\n\nAppended by `python -m benchmarks`; newest last.\n")
    with open(results, "a") as f:
        f.write(head + "".join(lines))
    print(f"appended {len(rows)} rows to {results}")


if __name__ == "__main__":
    main(sys.argv[1:])
