"""Inference throughput (images/s) of DDAD next to SPR and Score-DD, all three on the same score network.

DDAD: noise to step 250, 10 conditioned DDIM steps, features of x0 and y (the denoiser's own, or a
Wide-ResNet with random weights: the compute of the ImageNet one), maps. SPR: restoration error with N = 3
draws in one network call, 31x31 filter. Score-DD: T = 5 start times, r = 1 flow-ODE step, features of
both results (T (r + 2) = 15 network evaluations per image).
"""
from __future__ import annotations

import time

import torch

from scoreviz import ddad, features, scoredd, spr
from scoreviz.nets import ScoreModel, build, count_parameters
from scoreviz.sde import SPRSDE, VPSDE

# (network preset, image size, channels, batch, device, feature layers of the network, Wide-ResNet depth or None)
CASES = [("tiny", 64, 3, 8, "cpu", ("enc1", "enc2"), None),
         ("tiny", 64, 3, 8, "cpu", ("enc1", "enc2"), 50),
         ("ddad", 256, 3, 16, "cuda", ("down3", "down4"), None),
         ("ddad", 256, 3, 16, "cuda", ("down3", "down4"), 101)]


def _timed(fn, device, repeats: int = 3) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def _case(preset, size, ch, batch, device, layers, wrn_depth) -> list[dict]:
    dev = torch.device(device)
    torch.manual_seed(0)
    kw = {"image_size": size} if preset == "ddad" else {}
    net = build(preset, in_channels=ch, **kw).to(dev).eval()
    vp = ScoreModel(net, VPSDE(), output="eps")
    x = (torch.rand(batch, ch, size, size, device=dev) * 2 - 1)
    name = f"{preset} ({count_parameters(net) / 1e6:.1f}M params) {size}px batch {batch}"
    if wrn_depth is None:
        feats, flayers, fname = features.DenoiserFeatures(vp, layers), layers, "denoiser features"
    else:
        feats = features.BackboneFeatures(features.WideResNet(wrn_depth), ("layer2", "layer3")).to(dev).eval()
        flayers, fname = ("layer2", "layer3"), f"Wide-ResNet-{wrn_depth}-2 features"

    def ddad_maps():
        x0 = ddad.reconstruct(vp, x, w=3.0)
        d_f = ddad.feature_distance(feats(x0), feats(x), x.shape[-2:], flayers, 3)
        return ddad.combine_maps(ddad.pixel_distance(x0, x), d_f, norm="image", blur_sigma=4.0 * size / 256)

    rows = []
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        dt = _timed(ddad_maps, dev)
        rows.append({"benchmark": f"DDAD inference (10 DDIM steps + {fname}) {name}", "value": round(batch / dt, 2),
                     "unit": "img/s", "device": device, "net_calls_per_image": 12 if wrn_depth is None else 10})
        if wrn_depth is None:
            sprm = ScoreModel(net, SPRSDE(), output="std")
            dt = _timed(lambda: spr.anomaly_map_spr(sprm, x, sprm.sde, n=3, kernel=31, out_size=size,
                                                    resize="bilinear", batch_size=batch), dev)
            rows.append({"benchmark": f"SPR inference (N = 3, one batched call) {name}", "value": round(batch / dt, 2),
                         "unit": "img/s", "device": device, "net_calls_per_image": 3})
            ts = [s / vp.sde.N for s in (125, 100, 75, 50, 25)]
            dt = _timed(lambda: scoredd.anomaly_maps(vp, x, vp.sde, ts, r=1, layers=layers, batch_size=batch), dev)
            rows.append({"benchmark": f"Score-DD inference (T = 5, r = 1, flow ODE) {name}",
                         "value": round(batch / dt, 2), "unit": "img/s", "device": device, "net_calls_per_image": 15})
    return rows


def run() -> list[dict]:
    rows = []
    for case in CASES:
        if case[4] == "cuda" and not torch.cuda.is_available():
            continue
        rows += _case(*case)
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
