"""Reverse-time samplers: Euler steps of the probability-flow ODE and Euler-Maruyama steps of the reverse SDE.

All samplers share one signature, sample_X(score_fn, sde, x, ts, ..., callback=None), where ts holds
decreasing times of shape (S + 1,) or (S + 1, B) (one start time per sample) and callback(info) is
called with {"i", "t", "x", "score"} before each step and once more at the end (k-diffusion style),
so trajectory plots never change sampler code.
"""
from __future__ import annotations

import torch

from .sde import SDE, bcast

__all__ = ["sample_flow_ode", "sample_reverse_sde", "generate", "TrajectoryRecorder"]


def _times(ts, x: torch.Tensor) -> torch.Tensor:
    ts = torch.as_tensor(ts, dtype=x.dtype, device=x.device)
    if ts.ndim == 1:
        ts = ts[:, None].expand(-1, x.shape[0])
    if ts.ndim != 2 or ts.shape[1] != x.shape[0] or ts.shape[0] < 1:
        raise ValueError(f"ts must have shape (S+1,) or (S+1, B={x.shape[0]}), got {tuple(ts.shape)}")
    return ts


def _run(score_fn, sde: SDE, x, ts, noise_scale: float, generator, callback):
    """Shared Euler loop: x <- x + [f - c g^2 s] dt + noise_scale g sqrt(|dt|) z, c = 1 - noise_scale / 2."""
    ts = _times(ts, x)
    c = 1.0 if noise_scale else 0.5
    for i in range(ts.shape[0] - 1):
        t, dt = ts[i], ts[i + 1] - ts[i]
        score = score_fn(x, t)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "score": score})
        f, g = sde.sde(x, t)
        x = x + (f - c * bcast(g**2, x) * score) * bcast(dt, x)
        if noise_scale:
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + bcast(g * dt.abs().sqrt(), x) * z
    if callback is not None:
        callback({"i": ts.shape[0] - 1, "t": ts[-1], "x": x, "score": None})
    return x


@torch.no_grad()
def sample_flow_ode(score_fn, sde: SDE, x: torch.Tensor, ts, *, callback=None) -> torch.Tensor:
    """Euler steps of the probability-flow ODE dx = [f - g^2 score / 2] dt along ts (Song et al. Eq. 13)."""
    return _run(score_fn, sde, x, ts, 0.0, None, callback)


@torch.no_grad()
def sample_reverse_sde(score_fn, sde: SDE, x: torch.Tensor, ts, *, generator: torch.Generator | None = None,
                       callback=None) -> torch.Tensor:
    """Euler-Maruyama steps of the reverse SDE dx = [f - g^2 score] dt + g dw_bar along ts (Song et al. Eq. 6)."""
    return _run(score_fn, sde, x, ts, 1.0, generator, callback)


def generate(score_fn, sde: SDE, shape, *, steps: int | None = None, method: str = "flow",
             generator: torch.Generator | None = None, device=None, callback=None) -> torch.Tensor:
    """Draw prior samples and carry them from t = 1 to t = sde.eps with `steps` (default N) Euler steps."""
    samplers = {"flow": sample_flow_ode, "sde": sample_reverse_sde}
    if method not in samplers:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(samplers)}")
    x = sde.prior_sampling(shape, generator=generator, device=device)
    ts = sde.time_grid(1.0, steps or sde.N, t_end=sde.eps)
    kw = {"generator": generator} if method == "sde" else {}
    return samplers[method](score_fn, sde, x, ts, callback=callback, **kw)


class TrajectoryRecorder:
    """A sampler callback that keeps every state: .path() -> (S + 1, B, ...) tensor, .times -> list."""

    def __init__(self):
        self.states, self.times = [], []

    def __call__(self, info):
        self.states.append(info["x"].detach().cpu().clone())
        self.times.append(info["t"].detach().cpu().clone())

    def path(self) -> torch.Tensor:
        return torch.stack(self.states)
