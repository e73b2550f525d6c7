"""SPR (Shin et al., ICCV 2023): score-based perturbation resilience.

A sample is perturbed, x~ = x + s_k eps with s_k the marginal std of SPR's SDE at the variance scale
k, and restored in one step by the score: x^ = x~ + s_k^2 score(x~, k) = E[x | x~] (Tweedie, SPR
Eq. 2), which near a data manifold M is the orthogonal projection P_M(x~) (Eq. 3). Points on M come
back to themselves up to the tangential part of the noise; points off M come back onto M, away from
where they started. The restoration error measures that (Eqs. 5 and 6, Algorithm 1).
Points are (B, D), images (B, C, H, W).

On images: `error_maps` / `anomaly_map_spr` run Algorithm 1 with all N draws of a chunk in one network call,
and `postprocess` resizes the maps to the evaluation size and smooths them with the 31x31 mean filter
(PROTOCOLS: the paper's Lanczos + mirrored borders, or the official code's bilinear + zero padding). The
detector that fits a model and runs this on a dataset is methods.SPR; the label-free k is in selection.
"""
from __future__ import annotations

import math

import torch
from tqdm import tqdm

from . import maps as maps_
from .sde import SDE, bcast

__all__ = ["restoration_error", "restore", "project_to_curve", "PROTOCOLS", "scaled_kernel", "postprocess",
           "device_of", "error_maps", "anomaly_map_spr"]


def _scale_times(k, n: int, x: torch.Tensor) -> torch.Tensor:
    k = torch.as_tensor(k, dtype=x.dtype, device=x.device)
    if k.ndim != 0:
        raise ValueError(f"k (variance scale) must be a single number, got shape {tuple(k.shape)}")
    return k.expand(n)


@torch.no_grad()
def restoration_error(score_fn, x: torch.Tensor, sde: SDE, k: float = 1e-3, n: int = 3,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """SPR's restoration error map before smoothing (Eq. 6, Algorithm 1): images (B, C, H, W) -> (B, H, W).

    e = mean over n draws eps ~ N(0, I) of the channel sum of (eps + s_k score_fn(x + s_k eps, k))^2,
    with s_k = sde.marginal_std(k). All n draws of the batch go through score_fn in one call of batch
    B * n (draw-major: rows i * B .. (i + 1) * B - 1 hold draw i). Points (B, D) give (B,) (sum over D).
    On the normal manifold of dimension l the expectation is about l per point; at distance d off
    a flat manifold it grows like l + d^2 / s_k^2.
    """
    if x.ndim not in (2, 4):
        raise ValueError(f"x must be points (B, D) or images (B, C, H, W), got shape {tuple(x.shape)}")
    if int(n) != n or n < 1:
        raise ValueError(f"n (number of draws) must be a positive integer, got {n}")
    n, B = int(n), x.shape[0]
    eps = torch.randn((n, *x.shape), generator=generator, dtype=x.dtype, device=x.device)
    t = _scale_times(k, n * B, x)
    std = sde.marginal_std(t)
    flat_eps = eps.reshape(n * B, *x.shape[1:])
    x_tilde = x.repeat(n, *([1] * (x.ndim - 1))) + bcast(std, flat_eps) * flat_eps
    residual = flat_eps + bcast(std, flat_eps) * score_fn(x_tilde, t)
    return residual.pow(2).reshape(n, *x.shape).sum(2).mean(0)


@torch.no_grad()
def restore(score_fn, x_tilde: torch.Tensor, sde: SDE, k: float = 1e-3) -> torch.Tensor:
    """One-step restoration x^ = x~ + s_k^2 score(x~, k) = E[x | x~] (SPR Sec. 4.4 and Eq. 2), shaped like x~."""
    t = _scale_times(k, x_tilde.shape[0], x_tilde)
    return x_tilde + bcast(sde.marginal_std(t) ** 2, x_tilde) * score_fn(x_tilde, t)


@torch.no_grad()
def project_to_curve(x: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Orthogonal projection P_M(x) of points x (B, D) onto the polyline through vertices (K, D), K >= 2.

    Each point goes to the closest point of the closest segment, so for a curve given by many
    ordered points (toys.line_manifold(...).means) this is P_M of SPR Eq. 3 up to the chord error.
    """
    if x.ndim != 2 or vertices.ndim != 2 or x.shape[1] != vertices.shape[1] or vertices.shape[0] < 2:
        raise ValueError(f"x must be (B, D) and vertices (K >= 2, D), got {tuple(x.shape)} and {tuple(vertices.shape)}")
    v = vertices.to(x.dtype)
    a, seg = v[:-1], v[1:] - v[:-1]                                           # (K-1, D)
    u = ((x[:, None] - a[None]) * seg[None]).sum(-1) / seg.pow(2).sum(-1)   # (B, K-1)
    foot = a[None] + u.clamp(0, 1)[..., None] * seg[None]                   # (B, K-1, D)
    best = (foot - x[:, None]).pow(2).sum(-1).argmin(1)
    return foot[torch.arange(x.shape[0]), best]


# ---------------------------------------------------------------------------------------------------------
# Anomaly detection on images: Algorithm 1 end to end, the evaluation protocols, models and data per category.

#: how maps go from the network's resolution to the evaluation size: the paper (Sec. 5.3: Lanczos resizing,
#: 31x31 averaging filter, border handling unspecified -> reflect) and the official code (bilinear upsampling,
#: avg_pool2d with zero padding counted in the mean)
PROTOCOLS = {"paper": {"resize": "lanczos", "padding": "reflect"},
             "official": {"resize": "bilinear", "padding": "zeros"}}


def scaled_kernel(out_size: int, base: int = 31, ref: int = 256) -> int:
    """Odd mean-filter width for maps of out_size px: base * out_size / ref rounded to the nearest odd integer.

    SPR's 31x31 filter at 256 px covers 12 % of the map's width; smaller maps keep that fraction (64 px -> 7).
    """
    if out_size < 1 or base < 1:
        raise ValueError(f"out_size and base must be positive, got {out_size} and {base}")
    return max(1, 2 * int(math.floor((base * out_size / ref - 1) / 2 + 0.5)) + 1)


def postprocess(raw, *, kernel: int = 31, out_size: int = 256, resize: str = "lanczos",
                padding: str = "reflect") -> torch.Tensor:
    """Raw error maps (B, h, w) -> evaluation maps (B, out_size, out_size): resize, then kernel x kernel mean filter.

    Resizing first and filtering at the evaluation size is what the official code does; the paper gives
    no order. resize/padding: 'lanczos'/'reflect' (paper) or 'bilinear'/'zeros' (official code).
    """
    return maps_.mean_filter(maps_.resize_maps(raw, out_size, resize), kernel, padding=padding)


def device_of(score_fn, fallback: torch.device) -> torch.device:
    """The device of score_fn's parameters (where error_maps runs it and its generator lives), else fallback."""
    try:
        return next(score_fn.parameters()).device
    except (AttributeError, StopIteration):
        return fallback


@torch.no_grad()
def error_maps(score_fn, images: torch.Tensor, sde: SDE, *, k: float = 1e-3, n: int = 3, batch_size: int = 32,
               generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Restoration error maps (Eq. 6, Algorithm 1 lines 1-8) of images (B, C, H, W) -> (B, H, W) on the CPU.

    Images go to the score model's device in chunks of batch_size; each chunk is one call of
    restoration_error, i.e. one network call of batch_size * n. generator lives on that device.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dev = device_of(score_fn, images.device)
    out = []
    for chunk in tqdm(images.split(batch_size), desc=f"SPR k={k:g} N={n}", disable=not progress, leave=False):
        out.append(restoration_error(score_fn, chunk.to(dev), sde, k, n, generator=generator).float().cpu())
    return torch.cat(out) if out else images.new_zeros((0, *images.shape[2:]))


def anomaly_map_spr(score_fn, images: torch.Tensor, sde: SDE, *, k: float = 1e-3, n: int = 3, kernel: int = 31,
                    out_size: int = 256, resize: str = "lanczos", padding: str = "reflect", batch_size: int = 32,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """SPR anomaly maps (B, out_size, out_size) of images (B, C, H, W): Algorithm 1 + evaluation resizing.

    Restoration error (Eq. 6, all n draws of a chunk in one network call), resized to out_size and
    smoothed by a kernel x kernel mean filter; the image score is the map's maximum (maps.image_scores).
    Defaults are the paper's (k 1e-3, N 3, 31x31, 256 px, Lanczos); PROTOCOLS['official'] gives the code's.
    """
    raw = error_maps(score_fn, images, sde, k=k, n=n, batch_size=batch_size, generator=generator)
    return postprocess(raw, kernel=kernel, out_size=out_size, resize=resize, padding=padding)
