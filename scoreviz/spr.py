"""SPR (Shin et al., ICCV 2023): score-based perturbation resilience.

A sample is perturbed, x~ = x + s_k eps with s_k the marginal std of SPR's SDE at the variance scale
k, and restored in one step by the score: x^ = x~ + s_k^2 score(x~, k) = E[x | x~] (Tweedie, SPR
Eq. 2), which near a data manifold M is the orthogonal projection P_M(x~) (Eq. 3). Points on M come
back to themselves up to the tangential part of the noise; points off M come back onto M, away from
where they started. The restoration error measures that (Eqs. 5 and 6, Algorithm 1).
Points are (B, D), images (B, C, H, W).
"""
from __future__ import annotations

import torch

from .sde import SDE, bcast

__all__ = ["restoration_error", "restore", "project_to_curve"]


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
