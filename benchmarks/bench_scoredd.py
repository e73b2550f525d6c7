"""Score-DD inference: images/s of T-scales detection against the raw forward throughput of the same network.

T scales (Algorithms 1/2 with T start times and r steps) cost T (r + 2) network evaluations per image, run as
r batched calls of T*B samples (one per reverse step, all start times together) plus one feature call of 2*T*B
samples (x' and x'' together). Ideally a batch of B images therefore takes as long as (r + 2) forward passes
of T*B samples; the row 'time / forward pass' measures how close the code comes to that (overhead: the self
path, the feature distances, the bilinear upsampling, the product), as the median ratio of back-to-back runs.
A last row divides by the time of exactly the calls it makes (r forwards of T*B and one of 2*T*B): on a CPU a
batch of 2*T*B can cost more than twice a batch of T*B, which the first ratio counts as overhead.
"""
from __future__ import annotations

import statistics
import time

import torch

from benchmarks import device_threads
from scoreviz import configs, nets, scoredd
from scoreviz.sde import get_sde

#: (label, (profile, experiment) whose network and layers are used, channels, image size, images per batch B, device)
CASES = [
    ("cpu profile: tiny U-Net", ("cpu", "scoredd_images"), 1, 32, 8, "cpu"),
    ("paper profile: NCSN++", ("paper", "scoredd_images"), 3, 256, 4, "cuda"),
    ("paper profile (MNIST): DDPM++", ("paper", "scoredd_mnist"), 1, 32, 64, "cuda"),
]


def _seconds(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _runs(fns, device, repeat):
    """Back-to-back timings of each function, `repeat` times: medians of their ratios resist a drifting load."""
    for fn in fns:
        fn()                                         # warm-up
    return [[_seconds(fn, device) for fn in fns] for _ in range(repeat)]


@torch.no_grad()
def _case(label, which, channels, size, B, device, repeat=5):
    net_cfg = configs.get(*which)
    cfg = configs.get("paper", "scoredd_images")          # the paper's {t} and r
    dev = torch.device(device)
    sde = get_sde("vp", N=2000)
    ts, r = scoredd.start_times(cfg.t_steps["vp"], sde), cfg.r
    T = len(ts)
    kw = dict(net_cfg.net_kwargs, in_channels=channels)
    if nets.PRESETS[net_cfg.net][0] is nets.ResUNet:
        kw["embedding"] = "positional"
    model = nets.ScoreModel(nets.build(net_cfg.net, **kw), sde).to(dev).eval()
    layers = list(net_cfg.layers)
    x = torch.rand(B, channels, size, size, device=dev) * 2 - 1
    xt, tt = torch.rand(2 * T * B, channels, size, size, device=dev) * 2 - 1, torch.full((2 * T * B,), 0.1, device=dev)
    gen = torch.Generator(dev).manual_seed(0)
    runs = _runs([lambda: model.net(xt[:T * B], tt[:T * B], return_features=True),
                  lambda: model.net(xt, tt, return_features=True),
                  lambda: scoredd.anomaly_maps(model, x, sde, ts, r, layers, generator=gen)], dev, repeat)
    forward, detect = min(f for f, _, _ in runs), min(d for _, _, d in runs)
    ratio = statistics.median(d / f for f, _, d in runs)
    ratio_calls = statistics.median(d / (r * f + f2) for f, f2, d in runs)
    common = {"device": device, "T": T, "r": r, "B": B, "px": size, "layers": "+".join(layers),
              "params_M": round(nets.count_parameters(model) / 1e6, 2)}
    return [
        {"benchmark": f"{label}: raw forward, batch T*B = {T * B}", "value": round(T * B / forward, 1),
         "unit": "samples/s", **common},
        {"benchmark": f"{label}: T-scales detection (T (r+2) = {T * (r + 2)} evaluations / image)",
         "value": round(B / detect, 2), "unit": "img/s", **common},
        {"benchmark": f"{label}: T-scales time / forward pass of T*B (ideal r + 2 = {r + 2}; median of paired runs)",
         "value": round(ratio, 2), "unit": "forward passes", "vs_ideal": round(ratio / (r + 2), 2), **common},
        {"benchmark": f"{label}: T-scales time / its network calls alone ({r} x batch T*B + 1 x batch 2*T*B)",
         "value": round(ratio_calls, 2), "unit": "ratio", **common},
    ]


def run() -> list[dict]:
    rows = []
    for case in CASES:
        device = case[-1]
        if device == "cuda" and not torch.cuda.is_available():
            continue
        with device_threads(device) as threads:
            rows += [{**r, "threads": threads} for r in _case(*case, repeat=10 if device == "cpu" else 5)]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
