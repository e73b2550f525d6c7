"""SPR inference throughput (images/s) for N = 1, 3, 5 perturbations against the network's raw forward pass.

All N draws of a batch go through the network in one call of batch B * N (spr.restoration_error), so the
restoration error should cost about N forward passes per image, not more. Untrained networks: throughput
does not depend on the weights.
"""
from __future__ import annotations

import time

import pandas as pd
import torch

from benchmarks import device_threads
from scoreviz import configs, spr
from scoreviz.nets import ScoreModel, build, count_parameters
from scoreviz.sde import get_sde

NS = (1, 3, 5)
# (profile, channels, batch, device): the cpu profile's network at 32 px, the paper's `spr` U-Net at 192 px
CASES = [("cpu", 1, 64, "cpu"), ("paper", 3, 2, "cpu"), ("paper", 3, 16, "cuda")]


@torch.no_grad()
def time_inference(score_fn, images: torch.Tensor, sde, *, k: float = 1e-3, ns=(1, 3, 5), repeats: int = 3,
                   seed: int = 0) -> pd.DataFrame:
    """Inference cost per image of the batched restoration error for each N, against one plain forward pass.

    images (B, C, H, W) are one batch on the model's device; each timing is the best of `repeats` after a
    warm-up (CUDA synchronised). Columns: N, ms_per_image, images_per_s, forward_ms_per_image (score_fn on the
    unperturbed batch, batch B), forward_passes = ms_per_image / forward_ms_per_image (about N), and
    vs_plain_forward = the restoration error's time over that of a plain forward pass of the same B * N images
    (about 1: drawing the noise and squaring the residual cost little; a ratio above 1 in forward_passes but
    not here means the larger batch itself runs slower per image on this device).
    """
    dev = images.device
    x = images.to(dev)
    t = torch.full((len(x),), float(k), device=dev, dtype=x.dtype)

    def best_of(fn):
        fn()
        best = float("inf")
        for _ in range(repeats):
            _sync(dev)
            start = time.perf_counter()
            fn()
            _sync(dev)
            best = min(best, time.perf_counter() - start)
        return best / len(x)

    forward = best_of(lambda: score_fn(x, t))
    gen = torch.Generator(device=dev).manual_seed(seed)
    rows = []
    for n in ns:
        sec = best_of(lambda: spr.restoration_error(score_fn, x, sde, k, n, generator=gen))
        xn, tn = x.repeat(n, *([1] * (x.ndim - 1))), t.repeat(n)
        plain = best_of(lambda: score_fn(xn, tn))
        rows.append({"N": n, "ms_per_image": 1e3 * sec, "images_per_s": 1.0 / sec,
                     "forward_ms_per_image": 1e3 * forward, "forward_passes": sec / forward,
                     "vs_plain_forward": sec / plain})
    return pd.DataFrame(rows)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _rows(profile, channels, batch, device):
    cfg = configs.get(profile, "spr")
    dev = torch.device(device)
    torch.manual_seed(0)
    model = ScoreModel(build(cfg.net, **{**cfg.net_kwargs, "in_channels": channels}),
                       get_sde(cfg.sde, **cfg.sde_kwargs)).to(dev).eval()
    x = torch.rand(batch, channels, cfg.size, cfg.size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    table = time_inference(model, x.to(dev), model.sde, k=cfg.k, ns=NS, repeats=2 if profile == "paper" else 7)
    name = f"{cfg.net} ({count_parameters(model) / 1e6:.2f}M params) {cfg.size}px batch {batch}"
    rows = [{"benchmark": f"SPR raw forward, {name}", "value": round(1e3 / table.forward_ms_per_image.iloc[0], 2),
             "unit": "img/s", "device": device}]
    for _, r in table.iterrows():
        rows.append({"benchmark": f"SPR restoration error N={int(r.N)}, {name}", "value": round(r.images_per_s, 2),
                     "unit": "img/s", "device": device, "forward_passes": round(r.forward_passes, 2),
                     "vs_plain_forward_of_BxN": round(r.vs_plain_forward, 2)})
    return [{k: float(v) if hasattr(v, "item") else v for k, v in r.items()} for r in rows]


def run() -> list[dict]:
    rows = []
    for profile, channels, batch, device in CASES:
        if device == "cuda" and not torch.cuda.is_available():
            continue
        with device_threads(device) as threads:
            rows += [{**r, "threads": threads} for r in _rows(profile, channels, batch, device)]
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
