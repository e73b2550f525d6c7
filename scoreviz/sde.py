"""Forward SDEs of score-based generative models (Song et al. 2021) and SPR's dx = sigma^t dw.

Every SDE describes x(t) = a(t) x(0) + s(t) z, z ~ N(0, I), for t in [0, 1]. Subclasses give
`mean_coeff(t)` = a(t) and `marginal_std(t)` = s(t) (both shape (B,)) and `sde(x, t)`; the shared
methods build the marginals, the reverse-time SDE / probability-flow ODE and Euler discretisations.
Time t is a float tensor of shape (B,); images are (B, C, H, W), 2-D points (B, D).
"""
from __future__ import annotations

import math

import torch

__all__ = ["bcast", "SDE", "VESDE", "VPSDE", "SubVPSDE", "SPRSDE", "get_sde", "SDES"]


def bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector v (B,) so that it broadcasts against x (B, ...)."""
    return v.reshape(-1, *([1] * (x.ndim - 1)))


class SDE:
    """Base class: dx = f(x, t) dt + g(t) dw with an affine-Gaussian perturbation kernel."""

    #: smallest time used for training and sampling (avoids s(0) = 0 or the VE singularity)
    eps: float = 1e-5

    def __init__(self, N: int = 1000):
        if int(N) < 1:
            raise ValueError(f"N (number of discretisation steps) must be >= 1, got {N}")
        self.N = int(N)

    # -- to be provided by subclasses -------------------------------------------------
    def mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sde(self, x: torch.Tensor, t: torch.Tensor):
        """Drift f(x, t) (shaped like x) and diffusion g(t) (B,)."""
        raise NotImplementedError

    @property
    def prior_std(self) -> float:
        return float(self.marginal_std(torch.ones(1))[0])

    # -- shared ------------------------------------------------------------------------
    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor):
        """Mean (like x0) and std (B,) of the perturbation kernel p_0t(x(t) | x(0) = x0)."""
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device).expand(x0.shape[0])
        return bcast(self.mean_coeff(t), x0) * x0, self.marginal_std(t)

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None):
        """Draw x(t) = mean + std z; returns (x_t, z)."""
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        mean, std = self.marginal_prob(x0, t)
        return mean + bcast(std, x0) * z, z

    def prior_sampling(self, shape, generator: torch.Generator | None = None, device=None):
        """Samples of the prior p_1 (zero-mean isotropic Gaussian with std s(1))."""
        return torch.randn(shape, generator=generator, device=device) * self.prior_std

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        d = z[0].numel()
        s2 = self.prior_std**2
        return -0.5 * d * math.log(2 * math.pi * s2) - z.flatten(1).pow(2).sum(1) / (2 * s2)

    def discretize(self, x: torch.Tensor, t: torch.Tensor):
        """Euler-Maruyama discretisation with step 1/N: returns (f * dt, g * sqrt(dt))."""
        dt = 1.0 / self.N
        drift, diffusion = self.sde(x, t)
        return drift * dt, diffusion * math.sqrt(dt)

    def reverse(self, score_fn, probability_flow: bool = False) -> _ReverseSDE:
        """Reverse-time SDE (Song et al. Eq. 6) or probability-flow ODE (Eq. 13) driven by score_fn(x, t).

        The result's `.sde(x, t)` gives (f - c g^2 score, (1 - pf) g), c = 1/2 for the ODE and 1 for the SDE;
        every reverse-time sampler in `scoreviz.sampling` steps with it.
        """
        return _ReverseSDE(self, score_fn, probability_flow)

    def time_grid(self, t_start, n_steps: int, t_end: float | None = None) -> torch.Tensor:
        """Decreasing times, shape (n_steps + 1, *t_start.shape): steps of 1/N, or n_steps equal steps to t_end."""
        t0 = torch.as_tensor(t_start, dtype=torch.float32)
        steps = torch.arange(n_steps + 1, dtype=torch.float32).reshape(-1, *([1] * t0.ndim))
        dt = 1.0 / self.N if t_end is None else (t0 - float(t_end)) / n_steps
        return t0 - steps * dt

    def config(self) -> dict:
        return {"name": type(self).__name__, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class _ReverseSDE:
    """dx = [f - c g^2 score] dt + (1 - pf) g dw_bar, c = 1/2 for the probability-flow ODE, else 1 (SDE.reverse)."""

    def __init__(self, forward: SDE, score_fn, probability_flow: bool = False):
        self.forward, self.score_fn, self.probability_flow = forward, score_fn, bool(probability_flow)
        self.N = forward.N

    def sde(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor | None = None):
        """Reverse drift (like x) and diffusion (B,); `score` = score_fn(x, t) when the caller has it already."""
        drift, diffusion = self.forward.sde(x, t)
        if score is None:
            score = self.score_fn(x, t)
        c = 0.5 if self.probability_flow else 1.0
        drift = drift - c * bcast(diffusion**2, x) * score
        return drift, torch.zeros_like(diffusion) if self.probability_flow else diffusion


class VESDE(SDE):
    """Variance exploding: sigma(t) = sigma_min (sigma_max/sigma_min)^t, dx = sigma(t) sqrt(2 ln(smax/smin)) dw."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, N: int = 1000):
        super().__init__(N)
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"VESDE needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def mean_coeff(self, t):
        return torch.ones_like(t)

    def marginal_std(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def sde(self, x, t):
        g = self.marginal_std(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))
        return torch.zeros_like(x), g

    def discretize(self, x, t):
        """SMLD discretisation: g_i = sqrt(sigma_i^2 - sigma_{i-1}^2) on the grid i = t (N - 1)."""
        i = (t * (self.N - 1)).round()
        sig = self.marginal_std(i / (self.N - 1))
        prev = torch.where(i > 0, self.marginal_std((i - 1).clamp(min=0) / (self.N - 1)), torch.zeros_like(t))
        return torch.zeros_like(x), (sig**2 - prev**2).clamp(min=0).sqrt()


class VPSDE(SDE):
    """Variance preserving: dx = -beta(t)/2 x dt + sqrt(beta(t)) dw; discrete form = DDPM."""

    eps = 1e-3

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000):
        super().__init__(N)
        if not 0 <= beta_min < beta_max:
            raise ValueError(f"{type(self).__name__} needs 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _log_mean_coeff(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def mean_coeff(self, t):
        return torch.exp(self._log_mean_coeff(t))

    def marginal_std(self, t):
        return (-torch.expm1(2 * self._log_mean_coeff(t))).clamp(min=0).sqrt()

    def sde(self, x, t):
        b = self.beta(t)
        return -0.5 * bcast(b, x) * x, b.sqrt()

    @property
    def discrete_betas(self) -> torch.Tensor:
        """DDPM betas: linspace(beta_min/N, beta_max/N, N) (1e-4 .. 0.02 for N = 1000)."""
        return torch.linspace(self.beta_min / self.N, self.beta_max / self.N, self.N, dtype=torch.float64)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1 - self.discrete_betas, 0)

    def discretize(self, x, t):
        """DDPM discretisation: x_{i+1} = sqrt(1 - beta_i) x_i + sqrt(beta_i) z."""
        i = (t * (self.N - 1)).round().long().clamp(0, self.N - 1)
        beta = self.discrete_betas.to(x.device, x.dtype)[i]
        return (bcast((1 - beta).sqrt(), x) - 1) * x, beta.sqrt()


class SubVPSDE(VPSDE):
    """Sub-VP: the VP drift with diffusion sqrt(beta(t) (1 - exp(-2 int_0^t beta))); std = 1 - a(t)^2."""

    def marginal_std(self, t):
        return -torch.expm1(2 * self._log_mean_coeff(t))

    def sde(self, x, t):
        b = self.beta(t)
        disc = -torch.expm1(4 * self._log_mean_coeff(t))
        return -0.5 * bcast(b, x) * x, (b * disc).sqrt()

    discretize = SDE.discretize


class SPRSDE(SDE):
    """SPR's SDE dx = sigma^t dw: no drift, std(t) = sqrt((sigma^(2t) - 1) / (2 ln sigma)) (SPR Eq. 3)."""

    def __init__(self, sigma: float = 25.0, N: int = 1000):
        super().__init__(N)
        if not sigma > 1:
            raise ValueError(f"SPRSDE needs sigma > 1, got {sigma}")
        self.sigma = float(sigma)

    def mean_coeff(self, t):
        return torch.ones_like(t)

    def marginal_std(self, t):
        return torch.sqrt(torch.expm1(2 * t * math.log(self.sigma)) / (2 * math.log(self.sigma)))

    def sde(self, x, t):
        return torch.zeros_like(x), self.sigma**t


SDES = {"ve": VESDE, "vp": VPSDE, "subvp": SubVPSDE, "spr": SPRSDE}


def get_sde(name: str, **kwargs) -> SDE:
    """Build an SDE by name ('ve', 'vp', 'subvp', 'spr'); unknown names list the valid ones."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in SDES:
        raise ValueError(f"unknown SDE {name!r}; valid names: {', '.join(SDES)}")
    return SDES[key](**kwargs)
