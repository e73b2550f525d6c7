"""DDAD (Mousakhan et al., arXiv 2305.15956): anomaly detection with conditioned denoising diffusion models.

A test image y is noised to DDPM step t_start and denoised with DDIM steps that are pulled toward y itself
(the conditioning, weight w), so normal patterns come back as they were while defects are replaced by
normal texture. The anomaly map compares the reconstruction x0 with y pixel-wise (D_p) and feature-wise
(D_f, 1 - cosine similarity of 3x3-mean-pooled backbone features); image score = max of the blurred map.
The feature extractors and the "domain adaptation" that fine-tunes the ImageNet backbone on reconstructions
of normal images live in `scoreviz.features`; the detector (calibration, batches, seeds) is `methods.DDAD`.

Time convention (used everywhere here): DDPM step s in {1, ..., N} (1-indexed; s = 0 is the clean image)
has abar_s = sde.alphas_cumprod[s - 1] (abar_0 = 1) and is shown to the network as continuous time
t = s / N, where the VP SDE's marginal std matches sqrt(1 - abar_s) to 1.4e-3 (0.04 % at s = 250);
training draws t ~ U(1/N, 1], the continuum of the same steps. Images are (B, C, H, W) in [-1, 1],
maps (B, H, W).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from .maps import gaussian_blur
from .nets import ScoreModel
from .sampling import randn, sample_ddim
from .sde import bcast

__all__ = ["step_time", "alpha_bar", "ddim_steps", "reconstruct", "pixel_distance", "feature_distance",
           "combine_maps"]


# ---------------------------------------------------------------------------------------------- schedule
def _check_vp(sde) -> None:
    if not hasattr(sde, "alphas_cumprod"):
        raise ValueError(f"DDAD needs a DDPM (VPSDE) denoiser with alphas_cumprod, got {type(sde).__name__}")


def step_time(step, sde) -> torch.Tensor:
    """Continuous time t = s / N of DDPM step s (1-indexed); float or tensor in, float tensor out."""
    return torch.as_tensor(step, dtype=torch.float64) / sde.N


def alpha_bar(sde, steps) -> torch.Tensor:
    """abar_s = prod_{i <= s} (1 - beta_i) for 1-indexed steps s (abar_0 = 1), float64 of steps' shape."""
    _check_vp(sde)
    s = torch.as_tensor(steps, dtype=torch.long)
    if bool(((s < 0) | (s > sde.N)).any()):
        raise ValueError(f"DDPM steps must lie in 0..{sde.N}, got {s.tolist()}")
    table = torch.cat([torch.ones(1, dtype=torch.float64), sde.alphas_cumprod])
    return table[s]


def ddim_steps(t_start: int = 250, skip: int = 25) -> list[int]:
    """DDAD's DDIM schedule: [t_start, t_start - skip, ..., 0]; t_start / skip network calls (10 by default)."""
    t_start, skip = int(t_start), int(skip)
    if t_start < 1 or skip < 1:
        raise ValueError(f"t_start and skip must be positive integers, got {t_start}, {skip}")
    steps = list(range(t_start, 0, -skip))
    return steps + [0]


@torch.no_grad()
def reconstruct(model: ScoreModel, x: torch.Tensor, y: torch.Tensor | None = None, *, w: float = 3.0,
                t_start: int = 250, skip: int = 25, eta: float = 1.0, generator=None, callback=None) -> torch.Tensor:
    """DDAD's conditioned denoising process: x (B, C, H, W) -> reconstruction x0, shaped like x.

    x is noised to step t_start, x_T = sqrt(abar) x + sqrt(1 - abar) z, then sampling.sample_ddim (stochasticity
    eta) runs the steps of ddim_steps(t_start, skip) with a guided score: at step s, eps = eps_theta(x_s, s); the
    target y (default: x itself) is noised along the same predicted noise, y_s = sqrt(abar_s) y + sqrt(1 - abar_s) eps;
    the guided noise is eps^ = eps - w sqrt(1 - abar_s) (y_s - x_s), handed to DDIM as the score -eps^ / std(s).
    Equivalently the clean-image estimate moves toward y: x0^ = x0(eps) + w (1 - abar_s) (y - x0(eps)).
    generator: one torch.Generator, or one per image so that each image's draws do not depend on its batch.
    callback: the samplers' callback (see scoreviz.sampling): before each step and at the end (t_start / skip + 1
    calls) with keys i, t, x (state at step s), score (the guided score), denoised (x0^; None at the end).
    """
    if x.ndim != 4:
        raise ValueError(f"x must be images (B, C, H, W), got shape {tuple(x.shape)}")
    y = x if y is None else y
    if y.shape != x.shape:
        raise ValueError(f"the target y must be shaped like x {tuple(x.shape)}, got {tuple(y.shape)}")
    sde = model.sde
    steps = ddim_steps(t_start, skip)
    if steps[0] > sde.N:
        raise ValueError(f"t_start = {t_start} is beyond the schedule's N = {sde.N} steps")
    dev, dt = x.device, x.dtype

    def coef(v: torch.Tensor) -> torch.Tensor:   # float64 (B,) -> broadcast against x
        return bcast(v.to(dt).to(dev), x)

    def guided_score(xs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alpha_bar(sde, (t.detach().cpu().double() * sde.N).round().long())
        eps = model.eps(xs, t).to(dt)
        y_s = coef(a.sqrt()) * y + coef((1 - a).sqrt()) * eps
        eps_hat = eps - coef(w * (1 - a).sqrt()) * (y_s - xs)
        return -eps_hat / bcast(sde.marginal_std(t), xs)

    a = alpha_bar(sde, steps[0]).item()
    xt = math.sqrt(a) * x + math.sqrt(1 - a) * randn(x.shape, generator, dev, dt)
    return sample_ddim(guided_score, sde, xt, step_time(steps, sde), eta=eta, generator=generator, callback=callback)


# ---------------------------------------------------------------------------------------------- distances
def pixel_distance(x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """D_p: channel mean of |x0 - y|, (B, C, H, W) x2 -> (B, H, W)."""
    if x0.shape != y.shape or x0.ndim != 4:
        raise ValueError(f"x0 and y must be images of one shape (B, C, H, W), got {tuple(x0.shape)}, {tuple(y.shape)}")
    return (x0 - y).abs().mean(1)


def feature_distance(feats_a: Mapping, feats_b: Mapping, size, layers: Sequence[str], pool: int = 3) -> torch.Tensor:
    """D_f: sum over layers of 1 - cos(pool(a), pool(b)) over channels, upsampled (bilinear) to size -> (B, H, W).

    pool: k x k mean pooling with stride 1 and zero padding (PatchCore's local neighbourhood, k = 3).
    """
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    out = None
    for name in layers:
        if name not in feats_a or name not in feats_b:
            raise ValueError(f"feature layer {name!r} not produced by the feature extractor; it gives {sorted(feats_a)}")
        fa, fb = feats_a[name].float(), feats_b[name].float()
        if pool > 1:
            fa = F.avg_pool2d(fa, pool, 1, pool // 2, count_include_pad=True)
            fb = F.avg_pool2d(fb, pool, 1, pool // 2, count_include_pad=True)
        d = 1 - F.cosine_similarity(fa, fb, dim=1)
        d = F.interpolate(d[:, None], size=(h, w), mode="bilinear", align_corners=True)[:, 0]
        out = d if out is None else out + d
    if out is None:
        raise ValueError("layers must name at least one feature layer")
    return out


def combine_maps(d_p: torch.Tensor, d_f: torch.Tensor, *, v: float = 1.0, norm: str = "train",
                 scale: float | None = None, batch_size: int | None = None, blur_sigma: float = 4.0) -> torch.Tensor:
    """DDAD's anomaly map D_f + v * s * D_p, Gaussian-blurred (sigma in pixels); (N, H, W) x2 -> (N, H, W).

    s puts D_p on D_f's scale, s = max D_f / max D_p, with the maxima taken over
    norm='train': a fixed set of normal images (`scale`, from methods.DDAD.calibrate);
    norm='image': each image on its own;
    norm='batch': each run of batch_size consecutive images (the official code's test batches, so a
    map depends on which other images share its batch).
    """
    if d_p.shape != d_f.shape or d_p.ndim != 3:
        raise ValueError(f"d_p and d_f must be maps of one shape (N, H, W), got {tuple(d_p.shape)}, {tuple(d_f.shape)}")
    if norm == "train":
        if scale is None:
            raise ValueError("norm='train' needs the scale from normal images: call the detector's "
                             "calibrate(train_images) first, pass scale=..., or use norm='image'")
        s = torch.full((d_p.shape[0],), float(scale), dtype=d_p.dtype, device=d_p.device)
    elif norm == "image":
        s = d_f.flatten(1).amax(1) / d_p.flatten(1).amax(1).clamp_min(1e-12)
    elif norm == "batch":
        n = d_p.shape[0]
        b = n if batch_size is None else int(batch_size)
        if b < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        s = torch.empty(n, dtype=d_p.dtype, device=d_p.device)
        for i in range(0, n, b):
            s[i:i + b] = d_f[i:i + b].max() / d_p[i:i + b].max().clamp_min(1e-12)
    else:
        raise ValueError(f"unknown norm {norm!r}; valid: 'train', 'image', 'batch' (official code)")
    return gaussian_blur(d_f + v * bcast(s, d_p) * d_p, blur_sigma)

