"""The settings mechanism shared by every experiment: profiles, overrides, `replace` with clear errors."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = ["PROFILES", "FAST_RECIPE", "FAST_SHARE", "Settings"]

PROFILES = ("cpu", "fast", "paper")
#: the `fast` profile: the paper profile's data, resolution and networks, trained with this recipe for
#: 1 / FAST_SHARE of the paper's epochs (benchmarks/convergence.py measures the recipe on the CPU)
FAST_RECIPE = {"schedule": "cosine", "warmup": 100, "ema_warmup": True, "milestones": ()}
FAST_SHARE = 10


def _tuples(value):
    """Lists (papermill, YAML) become tuples, recursively, so settings stay immutable and comparable."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _tuples(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Shared by every experiment: the profile, the data it reads and the CPU threads it may use."""

    #: the experiment's name (configs.get(profile, name))
    EXPERIMENT: ClassVar[str] = ""
    #: profile -> the settings that differ from the class defaults ('fast' is derived from 'paper')
    PROFILES: ClassVar[dict[str, dict]] = {"cpu": {}, "paper": {}}
    #: whether the 'fast' profile trains with FAST_RECIPE (False: 'fast' is 'paper', e.g. the 2-D experiments)
    FAST_TRAINING: ClassVar[bool] = True
    profile: str = "cpu"
    datasets: tuple = ()            # datasets the experiment reads ('embedded', 'mnist': embedded; else DATA_ROOT)
    categories: dict = field(default_factory=dict)   # {dataset: category names}; missing/empty: every category
    ablation_categories: dict = field(default_factory=dict)  # the same for the ablation notebooks; missing: categories
    threads: int | None = None      # torch CPU threads (None: torch's default)

    @property
    def experiment(self) -> str:
        return self.EXPERIMENT

    def replace(self, **changes) -> Settings:
        """A copy with some settings changed; a dict for a dataclass-valued setting (train) changes its fields."""
        valid = [f.name for f in dataclasses.fields(self)]
        bad = sorted(set(changes) - set(valid))
        if bad:
            raise ValueError(f"unknown setting(s) {', '.join(bad)} for {self.experiment!r}; valid: {', '.join(valid)}")
        for name, value in changes.items():
            current = getattr(self, name)
            if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
                names = [f.name for f in dataclasses.fields(current)]
                wrong = sorted(set(value) - set(names))
                if wrong:
                    raise ValueError(f"unknown {name} setting(s) {', '.join(wrong)}; valid: {', '.join(names)}")
                value = dataclasses.replace(current, **_tuples(dict(value)))
            changes[name] = _tuples(value)
        return dataclasses.replace(self, **changes)

    @classmethod
    def for_profile(cls, profile: str, smoke: bool = False) -> Settings:
        """The settings of a profile: the class defaults with PROFILES[profile]; 'fast' = 'paper' with the training
        of FAST_RECIPE and a tenth of the epochs (EMA decay at most 0.999; the 2-D experiments: as 'paper').
        smoke: with smoke_changes() on top (one epoch, the shortest loops: every code path, minimal cost)."""
        cfg = cls().replace(profile=profile, **cls.PROFILES["paper" if profile == "fast" else profile])
        train = getattr(cfg, "train", None)
        if profile == "fast" and train is not None and cls.FAST_TRAINING:
            cfg = cfg.replace(train=train.replace(**FAST_RECIPE, epochs=max(1, train.epochs // FAST_SHARE),
                                                  ema_decay=min(train.ema_decay, 0.999)))
        return cfg.replace(**cfg.smoke_changes()) if smoke else cfg

    def smoke_changes(self) -> dict:
        """What a smoke run changes (`scoreviz reproduce --smoke`): training cut to one epoch here; the experiments
        add their own loops (grids, seeds, held-out images) cut to the fewest values that still take every path."""
        return {"train": {"epochs": 1}} if hasattr(self, "train") else {}

    def categories_of(self, dataset: str, ablation: bool = False) -> tuple:
        """The configured category names of `dataset` (empty: every category of the dataset); ablation: those
        of the ablation notebooks (03, 04, 06), where ablation_categories names them."""
        return tuple((ablation and self.ablation_categories.get(dataset)) or self.categories.get(dataset, ()))
