"""Training-free baseline detectors: per-pixel z-score, raw-patch nearest neighbour, nearest training image.

Why they exist: a diffusion detector that does not beat a per-pixel z-score or a raw-patch nearest
neighbour on the same images teaches nothing about diffusion models, only about the data. Every results
table and figure shows these baselines beside the methods (DESIGN.md, "Baselines everywhere").

They follow the detector protocol of `detectors.py` (settings as dataclass fields, `fit`, `maps`) and
need no network and no pretrained weights. Every large computation is chunked so that no intermediate
tensor exceeds about `CHUNK_BYTES` (256 MB), and nearest-neighbour distances use the matmul expansion
|q - b|^2 = |q|^2 - 2 q.b + |b|^2 to find the nearest neighbour, then recompute the distance to it
exactly (so a query identical to a bank entry gets exactly 0, free of the expansion's cancellation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .detectors import Detector, register
from .maps import mean_filter
from .train import resolve_device

__all__ = ["ZScore", "PatchNN", "PixelNN", "CHUNK_BYTES"]

CHUNK_BYTES = 256 * 2**20       # the largest intermediate tensor the baselines build, in bytes


# ----------------------------------------------------------------------------- helpers

def _check_images(images, what: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{what} must be a non-empty float tensor (N, C, H, W), got {shape}")
    return images


def _rows(bytes_per_row: int, budget: int = CHUNK_BYTES) -> int:
    """How many rows of bytes_per_row bytes fit in the budget (at least 1)."""
    return max(1, budget // max(1, int(bytes_per_row)))


def _odd(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= 1 (1, 3, 5, ...), got {value!r}")


def _positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Mirror-pad (B, C, H, W) by p on each side ('replicate' where the image is too small to mirror)."""
    if p == 0:
        return x
    mode = "reflect" if p < min(x.shape[2:]) else "replicate"
    return F.pad(x, (p, p, p, p), mode=mode)


def _nearest(queries: torch.Tensor, bank: torch.Tensor, bank_sq: torch.Tensor) -> torch.Tensor:
    """Index (Q,) of the nearest row of bank (K, D) for each row of queries (Q, D), chunked over both.

    bank_sq (K,) holds the squared row norms of bank; |q|^2 is the same for every candidate and is left out.
    Each (query chunk x bank chunk) distance matrix holds at most CHUNK_BYTES.
    """
    q_rows = min(queries.shape[0], 2048)
    k_rows = _rows(4 * q_rows)
    best_val = torch.full((queries.shape[0],), math.inf, device=queries.device)
    best_idx = torch.zeros(queries.shape[0], dtype=torch.long, device=queries.device)
    for q0 in range(0, queries.shape[0], q_rows):
        q, sl = queries[q0:q0 + q_rows], slice(q0, q0 + q_rows)
        for k0 in range(0, bank.shape[0], k_rows):
            d = torch.addmm(bank_sq[k0:k0 + k_rows][None], q, bank[k0:k0 + k_rows].T, alpha=-2.0)  # |b|^2 - 2 q.b
            val, idx = d.min(1)
            better = val < best_val[sl]
            best_val[sl] = torch.where(better, val, best_val[sl])
            best_idx[sl] = torch.where(better, idx + k0, best_idx[sl])
    return best_idx


def _nn_sq_dist(queries: torch.Tensor, bank: torch.Tensor, bank_sq: torch.Tensor) -> torch.Tensor:
    """Per-value squared differences (Q, D) of each query row to its nearest bank row, recomputed exactly."""
    return (queries - bank[_nearest(queries, bank, bank_sq)]).pow(2)


def _sample_indices(total: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """k distinct indices in [0, total), drawn uniformly with `generator`, sorted (all when k >= total)."""
    if k >= total:
        return torch.arange(total)
    if total <= 2**24:
        return torch.randperm(total, generator=generator)[:k].sort().values
    picked = torch.empty(0, dtype=torch.long)                       # huge totals: no total-sized permutation
    while len(picked) < k:
        draw = torch.randint(0, total, (k + k // 8 + 16,), generator=generator)
        picked = torch.cat([picked, draw]).unique()
    return picked[torch.randperm(len(picked), generator=generator)[:k]].sort().values


# ----------------------------------------------------------------------------- detectors

@register
@dataclass(kw_only=True)
class ZScore(Detector):
    """Per-pixel z-score: map = max over channels of |x - mean| / max(std, min_std), smooth x smooth mean filtered.

    mean and std (population std, ddof 0) are per pixel and channel over the training images, which must
    have the test images' size. min_std (in [-1, 1] units) keeps pixels that never vary in training
    (an all-black MNIST corner) from dividing by zero: the default 0.01 is about 1.3 gray levels of an
    8-bit image, so a pixel that never changed scores ~0.8 per gray level it moves.
    """

    name = "zscore"

    min_std: float = 1e-2
    smooth: int = 3

    def _check(self) -> None:
        if isinstance(self.min_std, bool) or not isinstance(self.min_std, (int, float)) \
                or not math.isfinite(self.min_std) or self.min_std <= 0:
            raise ValueError(f"min_std must be a finite number > 0, got {self.min_std!r}")
        _odd(self.smooth, "smooth")

    def fit(self, train, *, device="cpu", seed: int = 0, progress: bool = False, tag=None) -> "ZScore":
        """Per-pixel mean and std (C, H, W) of train (N, C, H, W), accumulated in float64 in chunks."""
        train = _check_images(train, "train")
        self.device = resolve_device(device)
        n, rows = train.shape[0], _rows(train[0].numel() * 8)
        total = torch.zeros(train.shape[1:], dtype=torch.float64)
        for i in range(0, n, rows):
            total += train[i:i + rows].detach().cpu().double().sum(0)
        mean = total / n
        sq = torch.zeros_like(mean)                                 # second pass: no E[x^2] - E[x]^2 cancellation
        for i in range(0, n, rows):
            sq += (train[i:i + rows].detach().cpu().double() - mean).pow(2).sum(0)
        self.mean = mean.float().to(self.device)
        self.std = (sq / n).sqrt().float().to(self.device)         # floored in maps(), so replace(min_std=) works
        self.fitted = True
        return self

    def maps(self, images, *, generator=None) -> torch.Tensor:
        """(B, H, W) smoothed per-pixel z-score maps; deterministic (generator is unused)."""
        self._require_fit()
        images = _check_images(images)
        if tuple(images.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(f"images must be (B, {', '.join(map(str, self.mean.shape))}) like the training "
                             f"images, got {tuple(images.shape)}")
        std = self.std.clamp_min(self.min_std)
        out = []
        for x in self._chunks(images, _rows(images[0].numel() * 4 * 3)):
            z = ((x.float() - self.mean) / std).abs().amax(1)
            out.append(mean_filter(z, self.smooth).cpu())
        return torch.cat(out)


@register
@dataclass(kw_only=True)
class PatchNN(Detector):
    """Raw-patch nearest neighbour: map = Euclidean distance of the patch around each pixel to its nearest bank patch.

    The memory bank holds the patches of the (mirror-padded) training images at stride `stride`, a seeded
    uniform subsample of at most `max_bank` of them (seed from fit). Test patches are taken at every
    pixel of the mirror-padded input, so the map has the input size; each pixel gets the distance of the
    patch centred on it. Patches are C * patch^2 raw values; no features, no pretrained weights.
    """

    name = "patch_nn"
    FIT_SETTINGS = ("patch", "stride", "max_bank")

    patch: int = 7
    stride: int = 1
    max_bank: int = 50_000

    def _check(self) -> None:
        _odd(self.patch, "patch")
        _positive_int(self.stride, "stride")
        _positive_int(self.max_bank, "max_bank")

    def _patches(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        """(B * L, C * patch^2) patches of the padded images x (B, C, H, W), image-major then row-major."""
        cols = F.unfold(_pad(x.float(), self.patch // 2), self.patch, stride=stride)     # (B, D, L)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])

    def fit(self, train, *, device="cpu", seed: int = 0, progress: bool = False, tag=None) -> "PatchNN":
        """Build the memory bank (K, C * patch^2), K <= max_bank, from train (N, C, H, W)."""
        train = _check_images(train, "train")
        self.device = resolve_device(device)
        n, c, h, w = train.shape
        p = self.patch // 2
        hp, wp = h + 2 * p, w + 2 * p
        per_image = ((hp - self.patch) // self.stride + 1) * ((wp - self.patch) // self.stride + 1)
        chosen = _sample_indices(n * per_image, self.max_bank, torch.Generator().manual_seed(int(seed)))
        dim = c * self.patch ** 2
        rows = _rows(per_image * dim * 4 * 2)                       # unfold output (+ padded copy) per image
        bank = []
        for i in range(0, n, rows):
            lo, hi = i * per_image, min(n, i + rows) * per_image
            sel = chosen[(chosen >= lo) & (chosen < hi)] - lo
            if len(sel):
                bank.append(self._patches(train[i:i + rows].to(self.device), self.stride)[sel.to(self.device)])
        self.bank = torch.cat(bank)
        self.bank_sq = self.bank.pow(2).sum(1)
        self.channels = c
        self.fitted = True
        return self

    def maps(self, images, *, generator=None) -> torch.Tensor:
        """(B, H, W) nearest-bank-patch distances at every pixel; deterministic (generator is unused)."""
        self._require_fit()
        images = _check_images(images)
        if images.shape[1] != self.channels:
            raise ValueError(f"images must have {self.channels} channel(s) like the training images, "
                             f"got shape {tuple(images.shape)}")
        h, w = images.shape[2:]
        dim = self.bank.shape[1]
        q_rows = _rows(dim * 4 * 2)                                 # query patches + their nearest patches
        out = []
        for x in self._chunks(images, _rows(h * w * dim * 4 * 2)):  # patches + their row-major copy, >= 1 image
            q = self._patches(x, 1)                                 # (B' * H * W, D)
            dist = torch.cat([_nn_sq_dist(q[i:i + q_rows], self.bank, self.bank_sq).sum(1).sqrt()
                              for i in range(0, len(q), q_rows)])
            out.append(dist.view(len(x), h, w).cpu())
        return torch.cat(out)


@register
@dataclass(kw_only=True)
class PixelNN(Detector):
    """Nearest training image in pixel space: map = per-pixel squared difference (summed over channels) to it.

    The nearest image minimises the total squared distance, which is the sum of this map, so the image
    score (reduce = 'mean') is that distance / (H * W) and ranks images exactly as the nearest-neighbour
    distance. The MNIST baseline; training and test images must have the same size.
    """

    name = "pixel_nn"
    reduce = "mean"

    def fit(self, train, *, device="cpu", seed: int = 0, progress: bool = False, tag=None) -> "PixelNN":
        """Keep the training images (N, C * H * W) as the bank."""
        train = _check_images(train, "train")
        self.device = resolve_device(device)
        self.shape = tuple(train.shape[1:])
        self.bank = train.detach().flatten(1).float().to(self.device)
        self.bank_sq = self.bank.pow(2).sum(1)
        self.fitted = True
        return self

    def maps(self, images, *, generator=None) -> torch.Tensor:
        """(B, H, W) squared differences to each image's nearest training image; generator is unused."""
        self._require_fit()
        images = _check_images(images)
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"images must be (B, {', '.join(map(str, self.shape))}) like the training images, "
                             f"got {tuple(images.shape)}")
        out = []
        for x in self._chunks(images, _rows(images[0].numel() * 4 * 3)):
            out.append(_nn_sq_dist(x.flatten(1).float(), self.bank, self.bank_sq).view(x.shape).sum(1).cpu())
        return torch.cat(out)
