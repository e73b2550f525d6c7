"""Score-DD (Teng et al.): whole-score versus self-score reverse paths, and the scores built on them.

A sample x(0) is noised to x(t) = a(t) x(0) + s(t) z and carried back r Euler steps twice: once by
the learned ("whole") score s_w(x, t) ~ grad log p_t(x), once by the sample's own ("self") score
s_e(x, t) = -(x - a(t) x(0)) / s(t)^2 = -z(t) / s(t), the score of p_t when the data distribution is
the point mass at x(0) (Appendix A.1, Eq. 7). The self path is the "true trajectory" back to x(0);
the whole path is pulled towards the high-density regions of the normal data. Normal samples keep
the two results close, anomalies do not (Sec. 3.2, Fig. 3; Algorithms 1 and 2 of Appendix A.3).
Points are (B, D), images (B, C, H, W); times are floats or (B,) tensors.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .sampling import sample_flow_ode, sample_reverse_sde
from .sde import SDE, bcast

__all__ = ["self_score_fn", "reverse_pair", "score_distance", "whole_score_difference"]


def _per_sample_times(t, x: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a float or a tensor of shape (B={x.shape[0]},), got shape {tuple(t.shape)}")
    return t


def self_score_fn(x0: torch.Tensor, sde: SDE):
    """The self score of x0 as a score_fn(x, t): -(x - a(t) x0) / s(t)^2 (Score-DD Appendix A.1, Eq. 7).

    It is the exact score of the perturbed point mass at x0, so samplers driven by it run the
    "true trajectory" from x(t) back to x0; z(t) is re-derived from the current x at every call.
    """

    def score(x: torch.Tensor, t) -> torch.Tensor:
        mean, std = sde.marginal_prob(x0, _per_sample_times(t, x))
        return -(x - mean) / bcast(std**2, x)

    return score


def _routed(callback, path: str):
    """Hand the sampler's info to `callback` with an extra 'path' key, or to one callback of a pair."""
    if callback is None:
        return None
    if isinstance(callback, (tuple, list)):
        if len(callback) != 2:
            raise ValueError(f"callback must be a callable or a pair (whole, self), got {len(callback)} items")
        return callback[0] if path == "whole" else callback[1]
    return lambda info: callback({**info, "path": path})


@torch.no_grad()
def reverse_pair(score_fn, x0: torch.Tensor, sde: SDE, t, r: int, probability_flow: bool = True,
                 generator: torch.Generator | None = None, callback=None):
    """Whole-score and self-score results after r reverse Euler steps from x(t) (Score-DD Algorithms 1 and 2).

    x0 (B, ...) is noised once, x(t) = a(t) x0 + s(t) z, and both paths start from that x(t); they take
    r steps of size 1/sde.N down to t - r/N, the whole path driven by score_fn, the self path by
    self_score_fn(x0, sde). With probability_flow=False (reverse SDE) both paths use the same noise
    draws. t is a float or a (B,) tensor of start times; r = t N runs to t = 0, where the self path
    is back at x0 up to the SDE's residual std at t = 0 and the Euler error.
    callback: a callable (receives the samplers' info dict plus 'path' = 'whole' or 'self'), or a pair
    (whole_callback, self_callback), e.g. two TrajectoryRecorders.
    Returns (x_whole, x_self), both shaped like x0.
    """
    t = _per_sample_times(t, x0)
    if int(r) != r or r < 1:
        raise ValueError(f"r (number of reverse steps) must be a positive integer, got {r}")
    if bool((t - r / sde.N < -1e-6).any()):
        raise ValueError(f"r = {r} steps of 1/N = 1/{sde.N} from t = {t.min().item():.4g} would run past t = 0")
    x_t, _ = sde.perturb(x0, t, generator=generator)
    ts = sde.time_grid(t, int(r)).to(x0.device, x0.dtype)
    self_fn = self_score_fn(x0, sde)
    if probability_flow:
        x_whole = sample_flow_ode(score_fn, sde, x_t, ts, callback=_routed(callback, "whole"))
        x_self = sample_flow_ode(self_fn, sde, x_t, ts, callback=_routed(callback, "self"))
        return x_whole, x_self
    # two generators in the same state give both paths the same noise n(t_i)
    if generator is None:
        seed = int(torch.randint(0, 2**62, (1,)))
        generator = torch.Generator(device=x0.device).manual_seed(seed)
    twin = torch.Generator(device=generator.device)
    twin.set_state(generator.get_state())
    x_whole = sample_reverse_sde(score_fn, sde, x_t, ts, generator=generator, callback=_routed(callback, "whole"))
    x_self = sample_reverse_sde(self_fn, sde, x_t, ts, generator=twin, callback=_routed(callback, "self"))
    return x_whole, x_self


@torch.no_grad()
def score_distance(score_fn, x_whole: torch.Tensor, x_self: torch.Tensor, t) -> torch.Tensor:
    """||s_w(x', t) - s_w(x'', t)||_2 over all non-batch dimensions, shape (B,).

    The whole-score difference of Score-DD's 2-D experiment (Sec. 4.1, Appendix B): the learned score
    evaluated at the whole-score result x' and the self-score result x'' at their common end time t.
    """
    if x_whole.shape != x_self.shape:
        raise ValueError(f"x_whole and x_self must have the same shape, got {tuple(x_whole.shape)} "
                         f"and {tuple(x_self.shape)}")
    t = _per_sample_times(t, x_whole).clamp(min=0)
    diff = score_fn(x_whole, t) - score_fn(x_self, t)
    return diff.flatten(1).norm(dim=1)


@torch.no_grad()
def whole_score_difference(score_fn, x0: torch.Tensor, sde: SDE, ts, r: int, probability_flow: bool = True,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """Anomaly score (B,) of points x0: score_distance after reverse_pair, summed over the start times ts.

    ts is one start time or a sequence of them (Score-DD's "T scales", Sec. 4.3); each start time
    gets its own noise draw. Larger means more anomalous.
    """
    starts = list(ts) if isinstance(ts, Sequence) else [ts]
    total = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    for t in starts:
        x_whole, x_self = reverse_pair(score_fn, x0, sde, t, r, probability_flow, generator=generator)
        total += score_distance(score_fn, x_whole, x_self, _per_sample_times(t, x0) - r / sde.N)
    return total
