"""One detector protocol for every method and baseline, and the registry that builds detectors by name.

A detector is built from keyword settings, fitted on normal training images, and then turns images into
anomaly maps:

    det = detectors.build("spr", k=1e-3, n=3)          # or detectors.SPR(k=1e-3, n=3)
    det.fit(train_images, device="cpu", seed=0)         # trains (cached) or loads what it needs
    maps = det.maps(test_images, generator=g)           # (B, H, W) on the CPU
    scores = det.scores(maps)                           # image scores, one shared rule (maps.image_scores)
    det.settings                                        # a plain dict, for reports

Adding a detector is one subclass with a `name` plus `@register` (see baselines.py for the smallest ones).
The method detectors themselves (SPR, Score-DD, DDAD) live in `methods.py`; the algorithm modules `spr`,
`scoredd` and `ddad` hold the papers' equations only.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from .maps import image_scores

__all__ = ["Detector", "REGISTRY", "register", "build", "names"]

REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a Detector subclass buildable by its `name` (build(name, **settings))."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"detector name {cls.name!r} is empty or taken; taken: {', '.join(REGISTRY)}")
    REGISTRY[cls.name] = cls
    return cls


def names() -> tuple[str, ...]:
    """The registered detector names (methods first, then baselines, in registration order)."""
    from . import baselines, methods  # noqa: F401  (registration happens on import)

    return tuple(REGISTRY)


def build(name: str, **settings) -> "Detector":
    """The detector registered as `name`, built from keyword settings; unknown names and settings raise."""
    if name not in names():
        raise ValueError(f"unknown detector {name!r}; valid: {', '.join(REGISTRY)}")
    return REGISTRY[name](**settings)


@dataclass(kw_only=True)
class Detector:
    """Base class: a dataclass of settings (keyword-only), fitted state in attributes set by fit().

    Subclasses set `name`, define their settings as dataclass fields, and implement `fit` and `maps`.
    `reduce` is how `scores` turns a map into an image score ('max' for every method; 'mean' where a
    detector's map is a per-pixel share of a global distance).
    """

    name: ClassVar[str] = ""
    reduce: ClassVar[str] = "max"
    #: settings that fit() turns into learned state: a fitted detector refuses to replace them
    FIT_SETTINGS: ClassVar[tuple] = ()

    def __post_init__(self):
        self._check()
        self.device = torch.device("cpu")
        self.fitted = False

    # -- the protocol ------------------------------------------------------------------------------------
    def fit(self, train: torch.Tensor, *, device="cpu", seed: int = 0, progress: bool = False,
            tag: str | None = None) -> "Detector":
        """Fit on normal training images (N, C, H, W) in [-1, 1]; returns self. tag names cached models."""
        raise NotImplementedError

    def maps(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Anomaly maps (B, H, W) on the CPU of images (B, C, H, W); larger = more anomalous."""
        raise NotImplementedError

    def details(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> dict:
        """{'maps': maps(images)} plus whatever intermediate results a detector can show (raw maps,
        reconstructions, ...), computed in the same pass; experiments.run keeps them in Result.extras."""
        return {"maps": self.maps(images, generator=generator)}

    def scores(self, maps: torch.Tensor) -> torch.Tensor:
        """Image scores (B,) of maps (B, H, W) by this detector's reduction (maps.image_scores)."""
        return image_scores(maps, self.reduce)

    # -- settings ------------------------------------------------------------------------------------------
    @property
    def settings(self) -> dict:
        """The detector's name and settings as plain values (tuples for sequences), for tables and reports."""
        out = {"detector": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            out[f.name] = tuple(value) if isinstance(value, list) else value
        return out

    def replace(self, **changes) -> "Detector":
        """A copy with some settings changed that keeps what fit() produced (it is shared, not copied).

        Unknown names raise; so do, on a fitted detector, changes of FIT_SETTINGS (they need a new fit).
        """
        valid = [f.name for f in dataclasses.fields(self)]
        bad = sorted(set(changes) - set(valid))
        if bad:
            raise ValueError(f"unknown setting(s) {bad} for detector {self.name!r}; valid: {', '.join(valid)}")
        new = copy.copy(self)
        for key, value in changes.items():
            setattr(new, key, value)
        new._check()
        refit = sorted(k for k in changes if k in self.FIT_SETTINGS and getattr(new, k) != getattr(self, k))
        if self.fitted and refit:
            raise ValueError(f"setting(s) {refit} change what fit() learns; build and fit a new {self.name!r} "
                             f"detector instead (replace changes the other settings: "
                             f"{', '.join(k for k in valid if k not in self.FIT_SETTINGS)})")
        return new

    def _check(self) -> None:
        """Validate settings (subclasses raise ValueError naming the bad value and the valid ones)."""

    def _require_fit(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"detector {self.name!r} is not fitted: call fit(train_images) first")

    def _chunks(self, images: torch.Tensor, batch_size: int):
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
        for i in range(0, len(images), max(1, int(batch_size))):
            yield images[i:i + batch_size].to(self.device)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.settings.items() if k != "detector")
        return f"{type(self).__name__}({body})"
