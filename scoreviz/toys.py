"""Toy distributions with exact scores: isotropic Gaussian mixtures and mixtures that trace low-dimensional manifolds.

If x(0) ~ sum_k w_k N(mu_k, s_k^2 I), the SDE's kernel x(t) = a(t) x(0) + s(t) z gives
p_t = sum_k w_k N(a mu_k, (a^2 s_k^2 + s^2) I), so log p_t and its score are closed form for every SDE.
A manifold is represented by many components with a tiny std spread along it (an empirical measure).
"""
from __future__ import annotations

import math

import torch

from .sde import SDE, bcast

__all__ = ["GaussianMixture", "scoredd_mixture", "line_manifold", "curve_manifold", "subspace_manifold", "EmpiricalScore"]


class GaussianMixture:
    """Mixture of isotropic Gaussians: weights (K,), means (K, D), stds (K,)."""

    def __init__(self, weights, means, stds):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(self.weights.shape[0]).clone()
        K = self.weights.shape[0]
        if self.means.ndim != 2 or self.means.shape[0] != K:
            raise ValueError(f"means must have shape (K={K}, D), got {tuple(self.means.shape)}")
        if (self.weights < 0).any() or not math.isclose(float(self.weights.sum()), 1.0, rel_tol=1e-6):
            raise ValueError("weights must be non-negative and sum to 1")
        self.weights = self.weights / self.weights.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _params(self, t, sde: SDE | None, B: int):
        """Per-sample mean coefficient a (B,) and component variances (B, K) of p_t."""
        if sde is None or t is None:
            return torch.ones(B, dtype=torch.float64), (self.stds**2).expand(B, -1)
        t = torch.as_tensor(t, dtype=torch.float64).expand(B)
        a, s = sde.mean_coeff(t), sde.marginal_std(t)
        return a, a[:, None] ** 2 * self.stds[None] ** 2 + s[:, None] ** 2

    def _log_components(self, x, t, sde):
        """log w_k N(x; a mu_k, v_k I) (B, K), with squared distances from one matrix product (no (B, K, D) array)."""
        x64 = x.to(torch.float64)
        a, var = self._params(t, sde, x.shape[0])
        d2 = (x64.pow(2).sum(1, keepdim=True) - 2 * a[:, None] * (x64 @ self.means.T)
              + a[:, None] ** 2 * self.means.pow(2).sum(1)[None]).clamp(min=0)
        return self.weights.log()[None] - 0.5 * self.dim * torch.log(2 * math.pi * var) - d2 / (2 * var), a, var

    def log_prob(self, x: torch.Tensor, t=None, sde: SDE | None = None) -> torch.Tensor:
        """log p_t(x) for x (B, D); t=None gives the data density p_0 itself."""
        logc, _, _ = self._log_components(x, t, sde)
        return torch.logsumexp(logc, 1).to(x.dtype)

    def score(self, x: torch.Tensor, t=None, sde: SDE | None = None) -> torch.Tensor:
        """Exact grad_x log p_t(x), shape (B, D): sum_k r_k(x) (a mu_k - x) / v_k."""
        logc, a, var = self._log_components(x, t, sde)
        w = torch.softmax(logc, 1) / var
        return (a[:, None] * (w @ self.means) - w.sum(1, keepdim=True) * x.to(torch.float64)).to(x.dtype)

    def score_fn(self, sde: SDE):
        """The exact score as a score_fn(x, t) for samplers."""
        return lambda x, t: self.score(x, t, sde)

    def posterior_mean(self, x: torch.Tensor, t, sde: SDE) -> torch.Tensor:
        """Tweedie: E[a(t) x(0) | x(t) = x] = x + s(t)^2 score(x, t), shape (B, D)."""
        t = torch.as_tensor(t, dtype=torch.float32).expand(x.shape[0])
        return x + bcast(sde.marginal_std(t) ** 2, x) * self.score(x, t, sde)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples of p_0, float32 (n, D)."""
        k = torch.multinomial(self.weights.float(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.stds[k, None] * z).float()

    def component_of(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the most responsible component of p_0 for each point (B,)."""
        logc, _, _ = self._log_components(x, None, None)
        return logc.argmax(1)


def scoredd_mixture() -> GaussianMixture:
    """Score-DD Fig. 3: 1/5 N((-5,-5), I) + 4/5 N((5,5), I)."""
    return GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], [1.0, 1.0])


def _on_curve(points: torch.Tensor, std: float) -> GaussianMixture:
    n = points.shape[0]
    return GaussianMixture(torch.full((n,), 1.0 / n), points, torch.full((n,), std))


def line_manifold(n: int = 400, length: float = 4.0, std: float = 1e-3) -> GaussianMixture:
    """A segment {(u, 0): |u| <= length/2} in R^2, as n equally spaced tiny Gaussians."""
    u = torch.linspace(-length / 2, length / 2, n, dtype=torch.float64)
    return _on_curve(torch.stack([u, torch.zeros_like(u)], 1), std)


def curve_manifold(n: int = 600, radius: float = 2.0, arc: float = 1.5 * math.pi, std: float = 1e-3) -> GaussianMixture:
    """A circular arc of the given radius and angle in R^2, as n tiny Gaussians."""
    a = torch.linspace(-arc / 2, arc / 2, n, dtype=torch.float64)
    return _on_curve(radius * torch.stack([torch.cos(a), torch.sin(a)], 1), std)


def subspace_manifold(d: int = 32, k: int = 2, n: int = 2000, std: float = 1e-3,
                      generator: torch.Generator | None = None) -> tuple[GaussianMixture, torch.Tensor]:
    """n points uniform in [-1, 1]^k on a random k-dim subspace of R^d; returns (mixture, basis (d, k))."""
    basis, _ = torch.linalg.qr(torch.randn(d, k, generator=generator, dtype=torch.float64))
    coords = torch.rand(n, k, generator=generator, dtype=torch.float64) * 2 - 1
    return _on_curve(coords @ basis.T, std), basis


class EmpiricalScore(torch.nn.Module):
    """The exact score of the training images' perturbed empirical distribution, as a score_fn(x, t).

    The data distribution is taken as a mixture of narrow Gaussians (std `std`) at the N training images
    (N, C, H, W), so p_t is a Gaussian mixture under any SDE and its score is closed form
    (toys.GaussianMixture). It is the score a perfectly fitted model of the training set would give: an ideal
    "whole score" for illustrations such as Score-DD's Fig. 1.
    """

    def __init__(self, images: torch.Tensor, sde: SDE, std: float = 0.05):
        super().__init__()
        n = len(images)
        self.mixture = GaussianMixture(torch.full((n,), 1.0 / n), images.flatten(1).double().cpu(), torch.full((n,), std))
        self.sde = sde

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0]).cpu()
        return self.mixture.score(x.flatten(1).double().cpu(), t, self.sde).to(x.device, x.dtype).reshape(x.shape)
