"""Settings per experiment and profile: `cpu` (small, minutes on 2 cores) and `paper` (the papers' own settings).

Notebooks hold only literals in their parameters cell and derive everything else with
`cfg = configs.get(PROFILE, "experiment", **overrides)`; attribute access, unknown names raise.
"""
from __future__ import annotations

import copy
from types import MappingProxyType

__all__ = ["Config", "get", "PROFILES", "EXPERIMENTS"]

PROFILES = ("cpu", "paper")


class Config(dict):
    """A dict with attribute access that names the valid keys when a key is missing."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no setting {name!r}; settings: {', '.join(sorted(self))}") from None


# experiment -> {"common": {...}, "cpu": {...}, "paper": {...}}; profile entries override common ones.
EXPERIMENTS: dict[str, dict] = {
    "gmm_trajectories": {  # Score-DD Fig. 3: the 2-D runs need no shrinking, cpu == paper
        "common": {
            "sde": "ve", "sde_kwargs": {"sigma_min": 0.1, "sigma_max": 20.0, "N": 100},
            "points": {"anomalous": (-6.0, 5.0), "normal_a": (5.17, 5.2), "normal_b": (-4.2, -4.3)},
            "panels": (("flow", 0.6), ("flow", 1.0), ("sde", 0.6)),
        },
        "cpu": {},
        "paper": {},
    },
}
EXPERIMENTS = MappingProxyType(EXPERIMENTS)


def get(profile: str, experiment: str, **overrides) -> Config:
    """Settings of `experiment` under `profile`, with keyword overrides (unknown keys are an error)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; valid experiments: {', '.join(EXPERIMENTS)}")
    entry = EXPERIMENTS[experiment]
    cfg = Config(copy.deepcopy({**entry.get("common", {}), **entry.get(profile, {})}))
    bad = sorted(set(overrides) - set(cfg))
    if bad:
        raise ValueError(f"unknown setting(s) {', '.join(bad)} for {experiment!r}; valid: {', '.join(sorted(cfg))}")
    cfg.update(overrides)
    cfg["profile"], cfg["experiment"] = profile, experiment
    return cfg
