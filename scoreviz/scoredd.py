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
from .sde import SDE, bcast, get_sde

__all__ = ["self_score_fn", "reverse_pair", "score_distance", "whole_score_difference", "METHODS", "start_times",
           "check_layers", "feature_distances", "distance_maps", "combine_maps", "anomaly_maps", "sigma_max_rule",
           "build_sde"]


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


# ==============================================================================================
# Score-DD on images: T scales, feature-map distances, baselines (Algorithms 1 and 2, Secs. 4.2-4.3)
# ==============================================================================================
METHODS = ("t_scales", "no_t_scales", "recon_loss")


def start_times(steps, sde: SDE) -> tuple[float, ...]:
    """Start times {t} = steps / N from integer step indices (e.g. (250, 200, 150, 100, 50) with N = 2000)."""
    steps = tuple(int(s) for s in steps)
    if not steps or min(steps) < 1 or max(steps) > sde.N:
        raise ValueError(f"start steps must be integers in [1, N = {sde.N}], got {steps}")
    return tuple(s / sde.N for s in steps)


def check_layers(feats: dict, layers) -> list[str]:
    """The chosen feature layers as a list (None: every key of feats); ValueError naming the valid keys."""
    layers = list(feats) if layers is None else list(layers)
    bad = [k for k in layers if k not in feats]
    if bad or not layers:
        raise ValueError(f"unknown feature layer(s) {bad or layers}; this network's feature keys: {', '.join(feats)}")
    return layers


@torch.no_grad()
def feature_distances(model, x_whole: torch.Tensor, x_self: torch.Tensor, t, layers=None, size=None) -> dict:
    """Euclidean distance over channels, without l2 normalisation, of the network's feature maps at x' and x''.

    x_whole, x_self (B, C, H, W) are fed to model.features in ONE call of batch 2B at times t (float or
    (B,)); returns {layer: (B, h, w)} at each layer's resolution, or bilinearly upsampled to `size`
    (int or (H, W); Score-DD Sec. 4.2).
    """
    if x_whole.shape != x_self.shape:
        raise ValueError(f"x_whole and x_self must have the same shape, got {tuple(x_whole.shape)} and "
                         f"{tuple(x_self.shape)}")
    t = _per_sample_times(t, x_whole)
    feats = model.features(torch.cat([x_whole, x_self]), torch.cat([t, t]))
    out = {}
    for key in check_layers(feats, layers):
        a, b = feats[key].float().chunk(2)
        d = (a - b).pow(2).sum(1).sqrt()
        if size is not None:
            hw = (size, size) if isinstance(size, int) else tuple(size)
            d = torch.nn.functional.interpolate(d[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]
        out[key] = d
    return out


def _chunks(x: torch.Tensor, batch_size: int | None):
    step = len(x) if not batch_size else int(batch_size)
    return [x[i:i + step] for i in range(0, len(x), step)]


@torch.no_grad()
def distance_maps(model, x0: torch.Tensor, sde: SDE, ts, r: int = 1, layers=None, probability_flow: bool = True,
                  generator: torch.Generator | None = None, batch_size: int | None = None, size=None) -> dict:
    """Per-layer, per-start-time feature distance maps of Score-DD's T scales, {layer: (T, B, H, W)}.

    For every start time t in ts (T of them) x0 (B, C, H, W) is noised to x(t) and carried r steps down by
    the whole score (x') and the self score (x''), Algorithm 1 (flow ODE) or 2 (reverse SDE, shared noise),
    with all T start times in one batch of T*B samples per network call; then x'(t_r), x''(t_r) go through
    the network in one call (batch 2*T*B) at t_r = t - r/N, and the distances of the chosen layers'
    feature maps are upsampled (bilinear) to H x W (or to `size`, e.g. smaller maps for a sweep over many
    start times). batch_size bounds the images per chunk. Maps are returned on the CPU.
    Network evaluations per image: T * (r + 2).
    """
    ts = [float(t) for t in (ts if isinstance(ts, Sequence) or torch.is_tensor(ts) else [ts])]
    T = len(ts)
    out: dict[str, list] = {}
    for xb in _chunks(x0, batch_size):
        B = xb.shape[0]
        x_rep = xb.repeat(T, *([1] * (xb.ndim - 1)))                              # (T*B, C, H, W), t-major
        t_rep = torch.tensor(ts, dtype=xb.dtype, device=xb.device).repeat_interleave(B)
        x_w, x_s = reverse_pair(model, x_rep, sde, t_rep, r, probability_flow, generator=generator)
        d = feature_distances(model, x_w, x_s, t_rep - r / sde.N, layers, size=size or tuple(xb.shape[-2:]))
        for key, v in d.items():
            out.setdefault(key, []).append(v.reshape(T, B, *v.shape[1:]).cpu())
    return {key: torch.cat(v, 1) for key, v in out.items()}


def combine_maps(dist: dict, layers=None, t_index=None, combine: str = "product") -> torch.Tensor:
    """Anomaly maps (B, H, W) from distance_maps output: sum over the chosen start times, then product
    (Score-DD Sec. 4.2) or sum over the chosen layers. t_index selects start times (default all)."""
    if combine not in ("product", "sum"):
        raise ValueError(f"combine must be 'product' or 'sum', got {combine!r}")
    layers = check_layers(dist, layers)
    out = None
    for key in layers:
        d = dist[key] if t_index is None else dist[key][list(t_index)]
        m = d.sum(0)
        out = m if out is None else (out * m if combine == "product" else out + m)
    return out


@torch.no_grad()
def anomaly_maps(model, x0: torch.Tensor, sde: SDE, ts, r: int = 1, layers=None, method: str = "t_scales",
                 probability_flow: bool = True, combine: str = "product", generator: torch.Generator | None = None,
                 batch_size: int | None = None) -> torch.Tensor:
    """Score-DD anomaly maps (B, H, W) of images x0 (B, C, H, W); the image score is their max.

    method: 't_scales' (Score-DD: T start times ts, r steps each, Algorithms 1/2); 'no_t_scales'
    (Table 4's continuous baseline: one run from max(ts) down to t = 1/N, r = max(ts) N - 1 steps, then
    the feature distances at 1/N); 'recon_loss' (Table 4's reconstruction baseline: one run from max(ts)
    to t = 0, map = sum over channels of (x'(0) - x''(0))^2).
    Network evaluations per image: T (r + 2), max(ts) N + 1, and max(ts) N. Maps are returned on the CPU.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    ts = [float(t) for t in (ts if isinstance(ts, Sequence) or torch.is_tensor(ts) else [ts])]
    if method == "t_scales":
        return combine_maps(distance_maps(model, x0, sde, ts, r, layers, probability_flow, generator, batch_size),
                            layers, combine=combine)
    t_max = max(ts)
    steps = round(t_max * sde.N)
    if method == "no_t_scales":
        if steps < 2:
            raise ValueError(f"no_t_scales needs max(ts) >= 2/N, got {t_max}")
        return combine_maps(distance_maps(model, x0, sde, [t_max], steps - 1, layers, probability_flow, generator,
                                          batch_size), layers, combine=combine)
    maps = []
    for xb in _chunks(x0, batch_size):
        x_w, x_s = reverse_pair(model, xb, sde, t_max, steps, probability_flow, generator=generator)
        maps.append((x_w - x_s).pow(2).sum(1).cpu())
    return torch.cat(maps)


def sigma_max_rule(images: torch.Tensor) -> float:
    """VE sigma_max by Song and Ermon's rule (NCSNv2, technique 1): the largest pairwise Euclidean distance
    between training images (N, ...); 348 for the paper's 256 px images, ~10-15 for 32 px textures."""
    flat = images.flatten(1).double()
    best = 0.0
    for chunk in flat.split(1024):
        best = max(best, float(torch.cdist(chunk, flat).max()))
    return best


def build_sde(name: str, kwargs: dict, train_images: torch.Tensor | None = None) -> SDE:
    """get_sde(name, **kwargs), with a VE sigma_max of None replaced by sigma_max_rule(train_images), rounded to 0.1."""
    kw = dict(kwargs)
    if kw.get("sigma_max", 0) is None:
        if train_images is None:
            raise ValueError("sigma_max=None (Song's rule) needs the training images")
        kw["sigma_max"] = round(sigma_max_rule(train_images), 1)
    return get_sde(name, **kw)
