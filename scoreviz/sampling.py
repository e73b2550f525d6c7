"""Reverse-time samplers: the probability-flow ODE and the reverse SDE (Euler steps) and DDIM.

All samplers share one signature, sample_X(score_fn, sde, x, ts, *, ..., callback=None), where ts holds
decreasing times of shape (S + 1,) or (S + 1, B) (one start time per sample), and every random draw takes
`generator`: one torch.Generator, or a sequence of one generator per sample so that a sample's draws do not
depend on its batch. The Euler samplers step with the reverse dynamics of `sde.reverse(score_fn, pf)` (the
one place where the reverse drift f - c g^2 score is written). DDIM needs a VPSDE and times that are DDPM
steps s / N (abar = alphas_cumprod[s - 1], abar = 1 at s = 0).

Callback vocabulary (k-diffusion style, the same for every sampler): callback(info) is called before each
step i = 0 .. S - 1 and once more at the end, so it sees S + 1 states, with
    "i"         step index (S at the end),
    "t"         the times of this state, shape (B,),
    "x"         the current state x(t), before the step,
    "score"     score_fn(x, t) used by the step (None at the end),
    "denoised"  the clean-image estimate from this score (None at the end): for the Euler samplers
                Tweedie's formula (x + std(t)^2 score) / mean_coeff(t); for DDIM its own
                x0 = (x - sqrt(1 - abar) eps) / sqrt(abar), eps = -std(t) score.
Callers may add keys (Score-DD adds "path"); `TrajectoryRecorder` keeps "x" and "t", so trajectory plots
never change sampler code.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .sde import SDE, bcast

__all__ = ["sample_flow_ode", "sample_reverse_sde", "sample_ddim", "generate", "TrajectoryRecorder", "randn"]


def randn(shape, generator, device, dtype) -> torch.Tensor:
    """Gaussian noise; `generator` may be one generator or one per sample (batch-independent draws)."""
    if isinstance(generator, Sequence):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
        return torch.stack([torch.randn(shape[1:], generator=g, device=device, dtype=dtype) for g in generator])
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def _times(ts, x: torch.Tensor) -> torch.Tensor:
    ts = torch.as_tensor(ts, dtype=x.dtype, device=x.device)
    if ts.ndim == 1:
        ts = ts[:, None].expand(-1, x.shape[0])
    if ts.ndim != 2 or ts.shape[1] != x.shape[0] or ts.shape[0] < 1:
        raise ValueError(f"ts must have shape (S+1,) or (S+1, B={x.shape[0]}), got {tuple(ts.shape)}")
    return ts


def _info(i, t, x, score=None, denoised=None) -> dict:
    return {"i": i, "t": t, "x": x, "score": score, "denoised": denoised}


def _run(score_fn, sde: SDE, x, ts, probability_flow: bool, generator, callback):
    """Shared Euler(-Maruyama) loop on rev = sde.reverse(score_fn, probability_flow), (drift, g) = rev.sde:
    x <- x + drift dt + g sqrt(|dt|) z (g = 0 for the probability-flow ODE, which draws nothing)."""
    ts = _times(ts, x)
    rev = sde.reverse(score_fn, probability_flow)
    for i in range(ts.shape[0] - 1):
        t, dt = ts[i], ts[i + 1] - ts[i]
        score = score_fn(x, t)
        if callback is not None:
            mean, std = sde.mean_coeff(t), sde.marginal_std(t)
            callback(_info(i, t, x, score, (x + bcast(std**2, x) * score) / bcast(mean, x)))
        drift, g = rev.sde(x, t, score=score)
        x = x + drift * bcast(dt, x)
        if not probability_flow:
            x = x + bcast(g * dt.abs().sqrt(), x) * randn(x.shape, generator, x.device, x.dtype)
    if callback is not None:
        callback(_info(ts.shape[0] - 1, ts[-1], x))
    return x


@torch.no_grad()
def sample_flow_ode(score_fn, sde: SDE, x: torch.Tensor, ts, *, callback=None) -> torch.Tensor:
    """Euler steps of the probability-flow ODE dx = [f - g^2 score / 2] dt along ts (Song et al. Eq. 13)."""
    return _run(score_fn, sde, x, ts, True, None, callback)


@torch.no_grad()
def sample_reverse_sde(score_fn, sde: SDE, x: torch.Tensor, ts, *, generator=None, callback=None) -> torch.Tensor:
    """Euler-Maruyama steps of the reverse SDE dx = [f - g^2 score] dt + g dw_bar along ts (Song et al. Eq. 6)."""
    return _run(score_fn, sde, x, ts, False, generator, callback)


def _alpha_bar(sde: SDE, t: torch.Tensor) -> torch.Tensor:
    """abar of DDPM step s = round(t N), float64 on the CPU, t's shape: alphas_cumprod[s - 1], 1 at s = 0."""
    if not hasattr(sde, "alphas_cumprod"):
        raise ValueError(f"DDIM needs a VPSDE (DDPM schedule with alphas_cumprod), got {type(sde).__name__}")
    s = t.detach().cpu().double() * sde.N
    steps = s.round()
    if bool(((s - steps).abs() > 1e-3).any()) or bool(((steps < 0) | (steps > sde.N)).any()):
        raise ValueError(f"DDIM times must be DDPM steps s / N with s in 0..{sde.N} (N = {sde.N}), "
                         f"got t * N = {s.flatten()[:8].tolist()}")
    return torch.cat([torch.ones(1, dtype=torch.float64), sde.alphas_cumprod.cpu()])[steps.long()]


def _coef(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample float64 coefficient (B,) cast to x's dtype and device, broadcast against x."""
    return bcast(v.to(x.dtype).to(x.device), x)


@torch.no_grad()
def sample_ddim(score_fn, sde: SDE, x: torch.Tensor, ts, *, eta: float = 1.0, generator=None,
                callback=None) -> torch.Tensor:
    """DDIM steps (Song, Meng & Ermon 2021, Eq. 12) along DDPM times ts = s / N of a VPSDE, stochasticity eta.

    eps = -std(t) score(x, t) (std = sde.marginal_std, the inverse of ScoreModel's eps -> score), then
    x0 = (x - sqrt(1 - a) eps) / sqrt(a) and x <- sqrt(a') x0 + c2 eps + c1 z with
    c1 = eta sqrt((1 - a / a') (1 - a') / (1 - a)), c2 = sqrt(1 - a' - c1^2) (a, a' = abar of this and the next
    time); eta = 0 is deterministic DDIM, eta = 1 the DDPM posterior's variance. x: (B, ...); returns x shaped like x.
    """
    ts = _times(ts, x)
    abar = _alpha_bar(sde, ts)
    if bool((abar[:-1] >= 1).any()):
        raise ValueError("DDIM cannot step from t = 0 (abar = 1): ts must decrease from DDPM steps s >= 1")
    for i in range(ts.shape[0] - 1):
        t, a, a_next = ts[i], abar[i], abar[i + 1]
        score = score_fn(x, t)
        eps = -bcast(sde.marginal_std(t), x) * score
        x0 = (x - _coef((1 - a).sqrt(), x) * eps) / _coef(a.sqrt(), x)
        if callback is not None:
            callback(_info(i, t, x, score, x0))
        c1 = eta * ((1 - a / a_next) * (1 - a_next) / (1 - a)).clamp(min=0).sqrt()
        c2 = (1 - a_next - c1**2).clamp(min=0).sqrt()
        x = _coef(a_next.sqrt(), x) * x0 + _coef(c2, x) * eps
        if bool((c1 > 0).any()):
            x = x + _coef(c1, x) * randn(x.shape, generator, x.device, x.dtype)
    if callback is not None:
        callback(_info(ts.shape[0] - 1, ts[-1], x))
    return x


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
