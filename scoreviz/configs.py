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
            "n_paths": 2,            # noise draws per point drawn in the figure
            "n_stats": 200,          # noise draws per point for the endpoint statistics
            "n_train": 20000,        # samples of the mixture for DSM training of the MLP
            "net": "mlp", "net_kwargs": {"dim": 2, "hidden": 128, "depth": 3},
            "train": {"epochs": 30, "batch_size": 256, "lr": 2e-3, "ema_decay": 0.99, "weight_decay": 0.0},
            "n_normal": 1000, "n_anomalous": 1000,
            "anomaly_box": 12.0,     # anomalies: uniform in [-box, box]^2 ...
            "anomaly_min_dist": 4.0,  # ... at least this far from both component means (4 std)
            "few_step": (0.6, 1),    # (t, r) of Score-DD's few-step regime for the score table
            "extent": 10.0,          # half-width of the density image (grows to fit the paths)
            "threads": 1,            # tiny MLP: one thread is fastest and avoids oversubscribing shared CPUs
        },
        "cpu": {},
        "paper": {},
    },
    "spr_geometry": {  # SPR Secs. 4.1-4.3, Figs. 3 and 5 on toy manifolds: cpu == paper
        "common": {
            "sde": "spr", "sde_kwargs": {"sigma": 25.0},
            "k": 1e-3,               # SPR's inference variance scale (sigma_k ~= 0.032)
            "k_show": 0.05,          # a larger scale (sigma_k ~= 0.24) that makes the 2-D pictures readable
            "k_subspace": 0.01,      # sigma_k ~= 0.10: above the spacing of the subspace's points
            "line": {"n": 400, "length": 4.0},
            "curve": {"n": 600, "radius": 2.0},
            "subspace": {"d": 32, "k": 2, "n": 2000},
            "n_show": 30,            # perturbed points drawn per manifold
            "n_projection": 1000,    # perturbed points for the projection statistics
            "interior": 0.1,         # leave out this fraction of the manifold at each end (edge effects)
            "resilience": {"angle": 0.5, "offset": 0.5, "n": 12},  # SPR Fig. 3: point on the arc and off it
            "annulus_dims": (2, 16, 128, 1024, 12288), "annulus_n": 2000,
            "distances": (0.0, 4.0, 9),    # distances from the manifold in units of sigma_k (linspace args)
            "n_error": 128,          # draws per point for the restoration-error curve
            "n_draws": 3,            # SPR's N in Algorithm 1
            "fig5_atoms": 40,        # a finite training set on the arc for Fig. 5
            "fig5_ks": (1e-4, 1e-2, 0.05, 0.5),
            "n_train": 20000,
            "net": "mlp", "net_kwargs": {"dim": 2, "hidden": 128, "depth": 3},
            "train": {"epochs": 30, "batch_size": 256, "lr": 2e-3, "ema_decay": 0.99, "weight_decay": 0.0},
            "ks": (-4.0, 0.0, 13),   # log10 grid of variance scales for the effective-region curve
            "n_test": 500, "anomaly_offset": 0.2,
            "threads": 1,
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
