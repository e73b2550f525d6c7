"""The ImageSet container every loader returns, the dataset error type, and the dataset names.

Contract: images are float32 tensors in [-1, 1] of shape (N, C, H, W); masks are bool
(N, H, W), True where anomalous; labels are int64 (N,), 1 = anomalous.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ImageSet", "DatasetError", "CATEGORIES", "SPLITS", "size_hw"]

CATEGORIES: dict[str, tuple[str, ...]] = {
    "mvtec": ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
              "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper"),
    "mpdd": ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes"),
    "btad": ("01", "02", "03"),
    "visa": ("candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
             "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum"),
    "textures": ("brick", "grass", "gravel"),
    "embedded": ("brick", "grass", "gravel", "tissue", "digit3", "face"),     # the embedded benchmark
    "mnist": tuple(str(d) for d in range(10)),
}
SPLITS = ("train", "test")


class DatasetError(ValueError):
    """Bad dataset input; the message names the path/problem and what was expected."""


@dataclass
class ImageSet:
    """A set of images with masks and labels: images (N, C, H, W) in [-1, 1], masks (N, H, W) bool,
    labels (N,) int64 (1 = anomalous), plus per-image defect type ("good" or defect name) and path."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    defect_types: list[str]
    paths: list[str]

    def __post_init__(self):
        n = self.images.shape[0]
        if self.images.ndim != 4 or self.masks.shape != (n, *self.images.shape[2:]):
            raise ValueError(f"ImageSet: images must be (N, C, H, W) and masks (N, H, W), "
                             f"got {tuple(self.images.shape)} and {tuple(self.masks.shape)}")
        if self.labels.shape != (n,) or len(self.defect_types) != n or len(self.paths) != n:
            raise ValueError(f"ImageSet: labels, defect_types and paths need {n} entries, got "
                             f"{tuple(self.labels.shape)}, {len(self.defect_types)}, {len(self.paths)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        kinds = sorted(set(self.defect_types))
        return (f"ImageSet(n={len(self)}, images={tuple(self.images.shape)}, "
                f"anomalous={int(self.labels.sum())}, defect_types={kinds})")

    def subset(self, idx) -> "ImageSet":
        """Select images by int indices, a bool mask or a slice; returns a new ImageSet."""
        if isinstance(idx, slice):
            idx = torch.arange(len(self))[idx]
        idx = torch.as_tensor(np.asarray(idx))
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        idx = idx.long().reshape(-1)
        pick = idx.tolist()
        return ImageSet(self.images[idx], self.masks[idx], self.labels[idx],
                        [self.defect_types[i] for i in pick], [self.paths[i] for i in pick])


def size_hw(size) -> tuple[int, int] | None:
    """A loader's size argument as (H, W): an int gives a square, None stays None (keep the files' size)."""
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))
