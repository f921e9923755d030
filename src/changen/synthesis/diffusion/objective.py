"""The training objective: ε-MSE, plus iDDPM's variational-bound term for a learned variance.

As DiT (and so Changen2) trains: ``loss = ‖ε − ε̂‖² + L_vb``. The model outputs ``[ε̂, v]``;
its variance interpolates in log space between the forward β_t and the posterior β̃_t,
``log σ² = f·log β_t + (1 − f)·log β̃_t`` with ``f = (v + 1) / 2`` (Nichol & Dhariwal, Eq. 15).
``L_vb`` is the KL between the true posterior q(x_{t−1} | x_t, x_0) and the model's
p(x_{t−1} | x_t) in bits per dimension, with the model mean built from a *detached* ε̂ so that
L_vb trains only the variance; at t = 0 it is the negative log-likelihood of x_0 under a
Gaussian discretised to 256 bins on [−1, 1]. The ᾱ table comes from the diffusers scheduler.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from torch import Tensor


def _per_sample(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over every dimension but the batch (within ``mask`` when given)."""
    if mask is None:
        return values.flatten(1).mean(1)
    return (values * mask).flatten(1).sum(1) / mask.expand_as(values).flatten(1).sum(1).clamp(min=1)


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def _std_normal_cdf(x: Tensor) -> Tensor:
    """Φ(x) by the tanh approximation iDDPM uses."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_nll(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """−log P(x) for x in [−1, 1] under N(mean, e^{2·log_scale}) discretised to 256 bins."""
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _std_normal_cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_min = _std_normal_cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta)
    )
    return -log_probs


class DiffusionObjective:
    """``objective(model_output, x0, noise, t)`` → (loss per sample, figures) for ε-prediction,
    with the variational-bound term when the output holds twice the channels of ``x0``."""

    def __init__(self, scheduler: DDPMScheduler) -> None:
        alphas_cumprod = scheduler.alphas_cumprod.double()
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        betas = 1.0 - alphas_cumprod / previous
        posterior_var = betas * (1.0 - previous) / (1.0 - alphas_cumprod)
        self.tables = {
            "sqrt_recip_ac": torch.sqrt(1.0 / alphas_cumprod),
            "sqrt_recipm1_ac": torch.sqrt(1.0 / alphas_cumprod - 1.0),
            "log_beta": torch.log(betas),
            # β̃_0 = 0: iDDPM clips its log to β̃_1's
            "log_posterior_var": torch.log(torch.cat([posterior_var[1:2], posterior_var[1:]])),
            "coef_x0": betas * torch.sqrt(previous) / (1.0 - alphas_cumprod),
            "coef_xt": (1.0 - previous) * torch.sqrt(1.0 - betas) / (1.0 - alphas_cumprod),
        }

    def _at(self, name: str, t: Tensor, like: Tensor) -> Tensor:
        values = self.tables[name].to(like.device)[t].to(like.dtype)
        return values.view(-1, *([1] * (like.ndim - 1)))

    def __call__(
        self,
        output: Tensor,
        x0: Tensor,
        x_t: Tensor,
        noise: Tensor,
        t: Tensor,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample loss and its parts (``mse``, ``vb``); ``mask`` (N, 1, H, W) restricts
        both to valid positions."""
        output, x0, x_t, noise = output.float(), x0.float(), x_t.float(), noise.float()
        channels = x0.shape[1]
        eps = output[:, :channels]
        mse = _per_sample((eps - noise) ** 2, mask)
        if output.shape[1] != 2 * channels:
            return mse, {"mse": mse.detach()}
        vb = self.variational_bound(eps.detach(), output[:, channels:], x0, x_t, t, mask)
        return mse + vb, {"mse": mse.detach(), "vb": vb.detach()}

    def variational_bound(
        self, eps: Tensor, v: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, mask: Tensor | None
    ) -> Tensor:
        """L_vb per sample in bits per dimension (see the module docstring)."""
        at = self._at
        min_log, max_log = at("log_posterior_var", t, x_t), at("log_beta", t, x_t)
        frac = (v + 1.0) / 2.0
        model_logvar = frac * max_log + (1.0 - frac) * min_log
        x0_pred = at("sqrt_recip_ac", t, x_t) * x_t - at("sqrt_recipm1_ac", t, x_t) * eps
        model_mean = at("coef_x0", t, x_t) * x0_pred + at("coef_xt", t, x_t) * x_t
        true_mean = at("coef_x0", t, x_t) * x0 + at("coef_xt", t, x_t) * x_t
        kl = normal_kl(true_mean, min_log.expand_as(x_t), model_mean, model_logvar)
        kl = _per_sample(kl, mask) / math.log(2.0)
        nll = discretized_gaussian_nll(x0, model_mean, 0.5 * model_logvar)
        nll = _per_sample(nll, mask) / math.log(2.0)
        return torch.where(t == 0, nll, kl)


def training_noise(
    scheduler: DDPMScheduler, x0: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """(x_t, ε, t) for a batch: uniform timesteps and Gaussian noise from ``generator``."""
    n = x0.shape[0]
    steps = int(scheduler.config["num_train_timesteps"])
    t = torch.randint(0, steps, (n,), generator=generator, device="cpu").to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device="cpu", dtype=x0.dtype).to(x0.device)
    return scheduler.add_noise(x0, noise, cast(torch.IntTensor, t)), noise, t
