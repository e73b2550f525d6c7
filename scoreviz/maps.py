"""Anomaly-map post-processing shared by the methods: resizing to the evaluation size, smoothing, image scores.

Maps are float tensors (B, H, W). The papers differ only in which of these they chain:
SPR: mean filter 31x31 and Lanczos resize to 256; Score-DD: bilinear upsampling; DDAD: Gaussian blur (sigma 4).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["resize_maps", "mean_filter", "gaussian_blur", "image_scores"]


def _check(maps) -> torch.Tensor:
    maps = torch.as_tensor(maps)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {tuple(maps.shape)}")
    return maps.float()


def resize_maps(maps, size, method: str = "lanczos") -> torch.Tensor:
    """Resize (B, H, W) maps to size (int or (H, W)) with 'lanczos' (PIL, float), 'bilinear' or 'nearest'."""
    maps = _check(maps)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(maps.shape[1:]) == (h, w):
        return maps
    if method == "lanczos":
        out = [np.asarray(Image.fromarray(m.cpu().numpy(), mode="F").resize((w, h), Image.LANCZOS)) for m in maps]
        return torch.from_numpy(np.stack(out)).to(maps.device)
    if method in ("bilinear", "nearest"):
        kw = {"align_corners": False} if method == "bilinear" else {}
        return F.interpolate(maps[:, None], size=(h, w), mode=method, **kw)[:, 0]
    raise ValueError(f"unknown resize method {method!r}; valid: lanczos, bilinear, nearest")


def mean_filter(maps, kernel: int, padding: str = "reflect") -> torch.Tensor:
    """kernel x kernel moving average; padding 'reflect' (mirror at the border) or 'zeros' (SPR's official code)."""
    maps = _check(maps)
    if kernel <= 1:
        return maps
    if kernel % 2 == 0:
        raise ValueError(f"kernel must be odd, got {kernel}")
    p = kernel // 2
    if padding == "zeros":
        return F.avg_pool2d(maps[:, None], kernel, 1, p, count_include_pad=True)[:, 0]
    if padding == "reflect":
        mode = "reflect" if p < min(maps.shape[1:]) else "replicate"
        return F.avg_pool2d(F.pad(maps[:, None], (p, p, p, p), mode=mode), kernel, 1)[:, 0]
    raise ValueError(f"unknown padding {padding!r}; valid: reflect, zeros")


def gaussian_blur(maps, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur with std sigma (pixels), kernel radius ceil(truncate * sigma), reflect padding."""
    maps = _check(maps)
    if sigma <= 0:
        return maps
    r = int(math.ceil(truncate * sigma))
    x = torch.arange(-r, r + 1, dtype=torch.float32, device=maps.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    mode = "reflect" if r < min(maps.shape[1:]) else "replicate"
    h = F.pad(maps[:, None], (r, r, r, r), mode=mode)
    h = F.conv2d(h, k.view(1, 1, 1, -1))
    return F.conv2d(h, k.view(1, 1, -1, 1))[:, 0]


def image_scores(maps, reduce: str = "max") -> torch.Tensor:
    """Image anomaly scores (B,): the maximum of each map (every method), or its mean (reduce='mean')."""
    flat = _check(maps).flatten(1)
    if reduce == "max":
        return flat.amax(1)
    if reduce == "mean":
        return flat.mean(1)
    raise ValueError(f"unknown reduce {reduce!r}; valid: max, mean")
