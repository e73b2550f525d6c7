"""Label-free choices, from normal images only (beyond the papers): SPR's variance scale k, Score-DD's feature
layers and start times {t}.

Both papers choose these settings by hand or by test results; here they are scored on held-out normal training
images (and, for Score-DD, on generic pseudo-defects made from them), never on test labels.
"""
from __future__ import annotations

import itertools
import math

import pandas as pd
import torch

from . import maps as maps_
from . import metrics
from .scoredd import check_layers, combine_maps
from .sde import SDE
from .spr import device_of, error_maps, postprocess

__all__ = ["k_criterion", "detector_k_criterion", "select_k", "pseudo_defects", "selection_table", "candidate"]


# ---------------------------------------------------------------------------------------------------------
# SPR: the variance scale k

@torch.no_grad()
def k_criterion(score_fn, normal_images: torch.Tensor, sde: SDE, ks, *, n: int = 3, kernel: int = 31,
                out_size: int = 256, resize: str = "lanczos", padding: str = "reflect", batch_size: int = 32,
                seed: int = 0) -> pd.DataFrame:
    """Label-free score of each variance scale k from normal images (B, C, H, W) only; pick k = argmax.

    Columns: k, sigma_k; r = mean restoration error per channel (the fraction of the squared perturbation
    that one score step leaves on normal data; 1 = a zero score); c = 1 - sqrt(r), the fraction of a
    perturbation's length the learned score removes; spread = std over the images of the image score
    (max of the smoothed map); criterion = c^2 / (sigma_k^2 * spread). An off-manifold displacement delta
    raises the error by about c^2 delta^2 / sigma_k^2 (Eq. 6 with a score that removes the fraction c),
    so the criterion is its size relative to the normal images' score spread, up to the unknown delta^2.
    """
    if normal_images.ndim != 4 or len(normal_images) < 2:
        raise ValueError(f"normal_images must be (B >= 2, C, H, W), got shape {tuple(normal_images.shape)}")
    dev = device_of(score_fn, normal_images.device)
    rows = []
    for k in ks:
        k = float(k)
        gen = torch.Generator(device=dev).manual_seed(seed)
        raw = error_maps(score_fn, normal_images, sde, k=k, n=n, batch_size=batch_size, generator=gen)
        r = raw.mean().item() / normal_images.shape[1]
        c = max(0.0, 1.0 - math.sqrt(r))
        scores = maps_.image_scores(postprocess(raw, kernel=kernel, out_size=out_size, resize=resize, padding=padding))
        sigma = sde.marginal_std(torch.tensor([k], dtype=torch.float64)).item()
        spread = scores.double().std().item()
        rows.append({"k": k, "sigma_k": sigma, "r": r, "c": c, "spread": spread,
                     "criterion": c**2 / (sigma**2 * spread) if spread > 0 else float("nan")})
    return pd.DataFrame(rows)


def detector_k_criterion(detector, normal_images: torch.Tensor, ks, *, seed: int = 0) -> pd.DataFrame:
    """k_criterion of a fitted SPR detector (methods.SPR): its score model, N, batch size and post-processing."""
    if not detector.fitted:
        raise RuntimeError("the SPR detector is not fitted: call fit(train_images) first")
    return k_criterion(detector.model, normal_images, detector.model.sde, ks, n=detector.n, kernel=detector.kernel,
                       out_size=detector.out_size, resize=detector.resize, padding=detector.padding,
                       batch_size=detector.batch_size, seed=seed)


def select_k(table: pd.DataFrame) -> float:
    """The k with the largest label-free criterion in a k_criterion table."""
    if table["criterion"].isna().all():
        raise ValueError("the criterion is undefined for every k (constant image scores); check the model and images")
    return float(table.loc[table["criterion"].idxmax(), "k"])


# ---------------------------------------------------------------------------------------------------------
# Score-DD: feature layers and the window of start times {t}

def pseudo_defects(images: torch.Tensor, generator: torch.Generator | None = None, amplitude: float = 0.5,
                   side=(1 / 6, 1 / 3)) -> tuple[torch.Tensor, torch.Tensor]:
    """Generic off-manifold corruptions of normal images, for label-free model selection.

    Each image (B, C, H, W) gets one random rectangle (sides uniform in side * H, side * W) with added Gaussian
    noise of std `amplitude`, clipped to [-1, 1]. Returns (images, masks (B, H, W) bool = changed pixels).
    The corruption knows nothing of real defects: it only moves part of a normal image off the data manifold.
    """
    x = images.clone()
    B, C, H, W = x.shape
    rand = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=generator))  # noqa: E731
    for i in range(B):
        h, w = rand(max(1, round(side[0] * H)), round(side[1] * H)), rand(max(1, round(side[0] * W)), round(side[1] * W))
        y0, x0 = rand(0, H - h), rand(0, W - w)
        noise = torch.randn(C, h, w, generator=generator, dtype=x.dtype) * amplitude
        x[i, :, y0:y0 + h, x0:x0 + w] = (x[i, :, y0:y0 + h, x0:x0 + w] + noise.to(x.device)).clamp(-1, 1)
    return x, (x != images).any(1)


def _windows(n_grid: int, T: int) -> list[list[int]]:
    if not 1 <= T <= n_grid:
        raise ValueError(f"need 1 <= T <= number of grid times ({n_grid}), got T = {T}")
    return [list(range(i, i + T)) for i in range(n_grid - T + 1)]


def selection_table(normal: dict, pseudo: dict, pseudo_masks: torch.Tensor, ts_grid, T: int = 5,
                    max_layers: int = 2, combine: str = "product"):
    """Score every candidate (window of T consecutive grid start times, set of 1..max_layers layers) on
    held-out normal images and their pseudo_defects, without any test data.

    normal, pseudo: distance_maps outputs {layer: (G, B, H, W)} over the start-time grid ts_grid (G,);
    pseudo_masks (B', H, W). Columns: layers, ts, image_auroc and pixel_auroc (normal vs pseudo-defects),
    detect = their mean (the selection objective), stability = -std of log image scores on the normal
    images (the label-free alternative that uses normal images alone). Returns a pandas DataFrame sorted
    by detect, best first.
    """
    order = sorted(range(len(ts_grid)), key=lambda i: -float(ts_grid[i]))       # windows in decreasing t
    keys = check_layers(normal, None)
    labels = torch.cat([torch.zeros(next(iter(normal.values())).shape[1]), torch.ones(len(pseudo_masks))]).long()
    masks = torch.cat([torch.zeros(len(labels) - len(pseudo_masks), *pseudo_masks.shape[1:], dtype=torch.bool),
                       pseudo_masks])
    rows = []
    for window in _windows(len(ts_grid), T):
        idx = [order[i] for i in window]
        for k in range(1, max_layers + 1):
            for layers in itertools.combinations(keys, k):
                m_n = combine_maps(normal, layers, idx, combine)
                m_p = combine_maps(pseudo, layers, idx, combine)
                maps = torch.cat([m_n, m_p])
                img = metrics.image_auroc(maps.flatten(1).amax(1), labels)
                pix = metrics.pixel_auroc(maps, masks)
                stab = -m_n.flatten(1).amax(1).clamp_min(1e-30).log().std().item()
                rows.append({"layers": layers, "ts": tuple(float(ts_grid[i]) for i in idx), "t_index": tuple(idx),
                             "image_auroc": img, "pixel_auroc": pix, "detect": (img + pix) / 2, "stability": stab})
    return pd.DataFrame(rows).sort_values("detect", ascending=False, kind="stable").reset_index(drop=True)


def candidate(table, *, by: str | None = None, layers=None, ts=None):
    """One row (pandas Series) of a selection_table: the best by column `by` (largest value, first on ties),
    or the candidate with exactly these layers and start times ts."""
    if by is not None:
        return table.sort_values(by, ascending=False, kind="stable").iloc[0]
    layers, ts = tuple(layers), tuple(float(t) for t in ts)
    hit = table[[tuple(lay) == layers and tuple(t) == ts for lay, t in zip(table["layers"], table["ts"])]]
    if hit.empty:
        raise ValueError(f"no candidate with layers {layers} and start times {ts} in the table")
    return hit.iloc[0]
