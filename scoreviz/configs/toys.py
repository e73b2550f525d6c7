"""Settings of the 2-D experiments (notebooks 01 and 02): they need no shrinking, so cpu == paper."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..train import TrainConfig
from .base import Settings

__all__ = ["GMMTrajectories", "SPRGeometry"]


@dataclass(frozen=True, kw_only=True)
class _Toy2D(Settings):
    """The 2-D experiments need no shrinking: cpu == fast == paper. A small MLP learns the score of n_train samples."""

    FAST_TRAINING = False
    n_train: int = 20000
    net: str = "mlp"
    net_kwargs: dict = field(default_factory=lambda: {"dim": 2, "hidden": 128, "depth": 3})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=256, lr=2e-3, ema_decay=0.99,
                                                                   weight_decay=0.0))
    threads: int | None = 1         # tiny MLP: one thread is fastest and avoids oversubscribing shared CPUs


@dataclass(frozen=True, kw_only=True)
class GMMTrajectories(_Toy2D):
    """Score-DD Fig. 3: whole- vs self-score paths on a 2-D Gaussian mixture (notebook 01)."""

    EXPERIMENT = "gmm_trajectories"
    sde: str = "ve"
    sde_kwargs: dict = field(default_factory=lambda: {"sigma_min": 0.1, "sigma_max": 20.0, "N": 100})
    points: dict = field(default_factory=lambda: {"anomalous": (-6.0, 5.0), "normal_a": (5.17, 5.2),
                                                  "normal_b": (-4.2, -4.3)})
    panels: tuple = (("flow", 0.6), ("flow", 1.0), ("sde", 0.6))
    n_paths: int = 2                # noise draws per point drawn in the figure
    n_stats: int = 200              # noise draws per point for the endpoint statistics
    n_normal: int = 1000
    n_anomalous: int = 1000
    anomaly_box: float = 12.0       # anomalies: uniform in [-box, box]^2 ...
    anomaly_min_dist: float = 4.0   # ... at least this far from both component means (4 std)
    few_step: tuple = (0.6, 1)      # (t, r) of Score-DD's few-step regime for the score table
    extent: float = 10.0            # half-width of the density image (grows to fit the paths)


@dataclass(frozen=True, kw_only=True)
class SPRGeometry(_Toy2D):
    """SPR Secs. 4.1-4.3, Figs. 3 and 5 on toy manifolds (notebook 02)."""

    EXPERIMENT = "spr_geometry"
    sde: str = "spr"
    sde_kwargs: dict = field(default_factory=lambda: {"sigma": 25.0})
    k: float = 1e-3                 # SPR's inference variance scale (sigma_k ~= 0.032)
    k_show: float = 0.05            # a larger scale (sigma_k ~= 0.24) that makes the 2-D pictures readable
    k_subspace: float = 0.01        # sigma_k ~= 0.10: above the spacing of the subspace's points
    line: dict = field(default_factory=lambda: {"n": 400, "length": 4.0})
    curve: dict = field(default_factory=lambda: {"n": 600, "radius": 2.0})
    subspace: dict = field(default_factory=lambda: {"d": 32, "k": 2, "n": 2000})
    n_show: int = 30                # perturbed points drawn per manifold
    n_projection: int = 1000        # perturbed points for the projection statistics
    interior: float = 0.1           # leave out this fraction of the manifold at each end (edge effects)
    resilience: dict = field(default_factory=lambda: {"angle": 0.5, "offset": 0.5, "n": 12})  # Fig. 3
    annulus_dims: tuple = (2, 16, 128, 1024, 12288)
    annulus_n: int = 2000
    distances: tuple = (0.0, 4.0, 9)   # distances from the manifold in units of sigma_k (linspace args)
    n_error: int = 128              # draws per point for the restoration-error curve
    n_draws: int = 3                # SPR's N in Algorithm 1
    fig5_atoms: int = 40            # a finite training set on the arc for Fig. 5
    fig5_ks: tuple = (1e-4, 1e-2, 0.05, 0.5)
    ks: tuple = (-4.0, 0.0, 13)     # log10 grid of variance scales for the effective-region curve
    n_test: int = 500
    anomaly_offset: float = 0.2
