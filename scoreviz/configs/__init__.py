"""Typed settings per experiment and profile: `cpu` (small, minutes on 2 cores), `paper` (the papers' own) and
`fast` (the paper profile trained with a fast recipe for a tenth of the epochs).

Notebooks hold only literals in their parameters cell and derive everything else with
`cfg = configs.get(PROFILE, "experiment", **overrides)`: a frozen dataclass whose fields are the
experiment's settings (class defaults = the papers' settings, `PROFILES` = what each profile changes). One
vocabulary everywhere: `datasets` (what the experiment reads) and `categories` ({dataset: names}, empty:
every category), `sde_kwargs` / `t_steps` keyed by SDE name, `train` a `train.TrainConfig`.
`cfg.replace(**changes)` gives a changed copy (a dict for `train` changes some of its fields); unknown
names raise with the valid list. The image experiments build their detectors: `cfg.detector(...)`.
"""
from __future__ import annotations

from .base import FAST_RECIPE, FAST_SHARE, PROFILES, Settings
from .images import DDADImages, ScoreDDImages, ScoreDDMnist, SPRImages
from .toys import GMMTrajectories, SPRGeometry

__all__ = ["Settings", "GMMTrajectories", "SPRGeometry", "SPRImages", "DDADImages", "ScoreDDImages", "ScoreDDMnist",
           "EXPERIMENTS", "NOTEBOOKS", "PROFILES", "FAST_RECIPE", "FAST_SHARE", "get", "notebook_datasets"]

EXPERIMENTS: dict[str, type[Settings]] = {cls.EXPERIMENT: cls for cls in (
    GMMTrajectories, SPRGeometry, SPRImages, DDADImages, ScoreDDImages, ScoreDDMnist)}
#: notebook -> (experiment, how many of its datasets the notebook reads: None = all)
NOTEBOOKS: dict[str, tuple[str, int | None]] = {
    "01_gmm_trajectories": ("gmm_trajectories", None), "02_spr_geometry": ("spr_geometry", None),
    "03_spr_effective_region": ("spr", 1), "04_spr_n_ablation": ("spr", 1), "05_spr_benchmark": ("spr", None),
    "06_scoredd_tscales": ("scoredd_images", 1), "07_scoredd_mnist": ("scoredd_mnist", None),
    "08_scoredd_benchmark": ("scoredd_images", None), "09_ddad": ("ddad", None),
}


def get(profile: str, experiment: str, *, smoke: bool = False, **overrides) -> Settings:
    """Settings of `experiment` under `profile`, with keyword overrides (unknown names raise with the valid list);
    smoke: cut to a smoke run (Settings.smoke_changes: one epoch, the shortest loops)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; valid experiments: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[experiment].for_profile(profile, smoke=bool(smoke)).replace(**overrides)


def notebook_datasets(notebook: str, profile: str) -> tuple[str, ...]:
    """The datasets a notebook (its file stem) reads under `profile`, as its settings declare them."""
    experiment, first = NOTEBOOKS[notebook]
    datasets = get(profile, experiment).datasets
    return tuple(datasets if first is None else datasets[:first])
