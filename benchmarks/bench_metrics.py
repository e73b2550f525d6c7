"""Speed and memory of the pixel metrics at MVTec scale: 170 maps of 256x256 (11M pixels).

Time is measured without tracing; peak memory in a second run under tracemalloc, which
sees numpy's array allocations (the inputs are allocated before tracing starts, so the
number is the metric's own working memory on top of the 44 MB float32 maps + 11 MB masks).
"""
import time
import tracemalloc

import numpy as np

from scoreviz.metrics import aupro, pixel_auroc

N, H, W, SEED = 170, 256, 256, 0


def make_data(n=N, h=H, w=W, seed=SEED):
    """Seeded float32 maps (N, H, W) and bool masks with random disk blobs; 1/3 of images normal."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        if i % 3 == 0:
            continue
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(2, 30)
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    maps = rng.standard_normal((n, h, w), dtype=np.float32)
    maps += 1.5 * masks
    return maps, masks


def _measure(name, fn, maps, masks):
    t0 = time.perf_counter()
    value = fn(maps, masks)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    fn(maps, masks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"benchmark": f"{name}, {N}x{H}x{W} float32", "value": round(seconds, 3), "unit": "s",
            "peak_mem_mb": round(peak / 2**20, 1),
            "mem_method": "tracemalloc peak of a second run (numpy allocations, inputs excluded)",
            "metric_value": [round(float(v), 6) for v in np.atleast_1d(value)]}


def run():
    """Rows {benchmark, value (s), unit, peak_mem_mb, mem_method, metric_value (list)}."""
    maps, masks = make_data()

    def both(m, k):
        return pixel_auroc(m, k), aupro(m, k)

    return [_measure("pixel_auroc", pixel_auroc, maps, masks),
            _measure("aupro(fpr_limit=0.3)", aupro, maps, masks),
            _measure("pixel_auroc+aupro", both, maps, masks)]


if __name__ == "__main__":
    for row in run():
        print(row)
