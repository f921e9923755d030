"""The diffusion core: diffusers schedulers as configured, the iDDPM objective, masked change
sampling (exact in the masked phase, free after the switch, batch-invariant), and a tiny
RS-DiT that learns its condition."""

from __future__ import annotations

import pytest
import torch

from changen.errors import ConfigError
from changen.synthesis.diffusion.objective import DiffusionObjective, training_noise
from changen.synthesis.diffusion.rsdit import RSDiT, preset_config
from changen.synthesis.diffusion.sampling import (
    SamplingConfig,
    forward_noise,
    latent_change,
    sample,
)
from changen.synthesis.diffusion.schedule import ScheduleConfig

pytestmark = pytest.mark.usefixtures("one_thread")
SCHEDULE = ScheduleConfig()


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize(("name", "steps"), [("ddim", 50), ("ddim", 7), ("ddpm", 25)])
def test_samplers_respace_from_the_last_training_step(name: str, steps: int) -> None:
    scheduler = SCHEDULE.sampler(name, steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    assert len(timesteps) == steps and timesteps[0] == 999 and timesteps == sorted(timesteps)[::-1]
    assert SCHEDULE.training().config["variance_type"] == "learned_range"


def test_bad_schedules_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="sampler"):
        SCHEDULE.sampler("euler", 10)
    with pytest.raises(ConfigError, match="steps"):
        SCHEDULE.sampler("ddim", 0)
    with pytest.raises(ConfigError, match="switch"):
        SamplingConfig(switch=1.5)
    with pytest.raises(ConfigError, match="betas"):
        ScheduleConfig(beta_start=0.1, beta_end=0.01)


def test_ddim_with_the_true_noise_returns_the_clean_sample() -> None:
    """A round trip through diffusers: x_T = q(x0, T), an oracle ε at every step, eta 0."""
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    table = SCHEDULE.training().alphas_cumprod

    def oracle(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = table[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    out = sample(oracle, SCHEDULE, x0.shape, gens(0, 1), SamplingConfig(steps=20))
    assert torch.allclose(out, x0, atol=1e-4)


def test_latent_change_marks_a_cell_changed_when_any_pixel_is() -> None:
    change = torch.zeros(1, 8, 8, dtype=torch.bool)
    change[0, 0, 0] = change[0, 5, 6] = True
    cells = latent_change(change, (2, 2))
    assert cells.tolist() == [[[[1.0, 0.0], [0.0, 1.0]]]]


def _masked(switch: float, sampler: str = "ddim"):
    pre = torch.rand(2, 3, 8, 8) * 2 - 1
    change = torch.zeros(2, 8, 8)
    change[:, :4] = 1
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    out = sample(
        lambda x, t: torch.cat([0.3 * x, torch.zeros_like(x)], dim=1),
        SCHEDULE,
        pre.shape,
        gens(3, 4),
        SamplingConfig(sampler=sampler, steps=10, switch=switch),
        pre_latent=pre,
        change=latent_change(change, (8, 8)),
        trace=lambda i, x, known: seen.append((i, x.clone(), known.clone())),
    )
    return pre, change.bool()[:, None].expand(-1, 3, -1, -1), out, seen


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_masked_phase_keeps_the_noised_pre_event_latent_exactly(sampler: str) -> None:
    pre, changed, out, seen = _masked(1.0, sampler)
    assert [i for i, _, _ in seen] == list(range(10))
    for _, x, known in seen:
        assert torch.equal(x[~changed], known[~changed])
    assert torch.equal(out[~changed], pre[~changed])  # the last step lands on z_pre
    assert not torch.equal(out[changed], pre[changed])


def test_after_the_switch_unchanged_regions_run_free() -> None:
    pre, changed, out, seen = _masked(0.6)
    assert [i for i, _, _ in seen] == list(range(6))
    assert not torch.equal(out[~changed], pre[~changed])


def test_forward_noise_is_the_schedules_q() -> None:
    scheduler = SCHEDULE.sampler("ddim", 10)
    z, noise = torch.rand(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    a = SCHEDULE.training().alphas_cumprod[500]
    assert torch.allclose(
        forward_noise(scheduler, z, noise, 500), a.sqrt() * z + (1 - a).sqrt() * noise
    )


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_a_sample_does_not_depend_on_its_batch(sampler: str) -> None:
    config = SamplingConfig(sampler=sampler, steps=6, eta=0.5)
    denoiser = lambda x, t: torch.cat([0.2 * x, 0.1 * torch.ones_like(x)], dim=1)  # noqa: E731
    together = sample(denoiser, SCHEDULE, (3, 2, 4, 4), gens(7, 8, 9), config)
    alone = sample(denoiser, SCHEDULE, (1, 2, 4, 4), gens(8), config)
    assert torch.equal(together[1:2], alone)


# -- the objective ---------------------------------------------------------------------------


def test_perfect_prediction_gives_zero_mse_and_kl() -> None:
    objective = DiffusionObjective(SCHEDULE.training())
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    x_t, noise, t = training_noise(SCHEDULE.training(), x0, torch.Generator().manual_seed(0))
    t = t.clamp(min=1)
    x_t = SCHEDULE.training().add_noise(x0, noise, t)
    v = -torch.ones_like(x0)  # the posterior variance itself
    loss, parts = objective(torch.cat([noise, v], dim=1), x0, x_t, noise, t)
    assert parts["mse"].abs().max() < 1e-10 and parts["vb"].abs().max() < 1e-5
    assert loss.shape == (4,)


def test_the_bound_trains_only_the_variance() -> None:
    objective = DiffusionObjective(SCHEDULE.training())
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    x_t, noise, t = training_noise(SCHEDULE.training(), x0, torch.Generator().manual_seed(1))
    t[0] = 0  # the decoder term at t = 0
    eps = torch.randn_like(x0, requires_grad=True)
    v = torch.zeros_like(x0, requires_grad=True)
    _, parts = objective(torch.cat([eps, v], dim=1), x0, x_t, noise, t)
    parts_vb = objective.variational_bound(eps.detach(), v, x0, x_t, t, None)
    parts_vb.sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0 and eps.grad is None
    assert torch.isfinite(parts["vb"]).all()


def test_a_few_steps_of_a_tiny_rsdit_lower_the_loss() -> None:
    """Pixel-space images made of their label map: 60 AdamW steps at least halve the loss on
    the same noise draws (a model whose output or timestep input were cut would not)."""
    torch.manual_seed(0)
    model = RSDiT(preset_config("tiny", in_channels=3, label_channels=3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0)
    scheduler = SCHEDULE.training()
    objective = DiffusionObjective(scheduler)
    gen = torch.Generator().manual_seed(0)
    labels = (torch.rand(8, 3, 8, 8, generator=gen) > 0.5).float()  # one per token
    x0 = labels.repeat_interleave(2, 2).repeat_interleave(2, 3) * 2 - 1
    labels = labels.repeat_interleave(16, 2).repeat_interleave(16, 3)  # 8× the latent grid
    probe = training_noise(scheduler, x0, torch.Generator().manual_seed(5))

    def probe_loss() -> float:
        x_t, noise, t = probe
        with torch.no_grad():
            return float(objective(model(x_t, t, labels), x0, x_t, noise, t)[0].mean())

    before = probe_loss()
    for _ in range(60):
        x_t, noise, t = training_noise(scheduler, x0, gen)
        loss, _ = objective(model(x_t, t, labels), x0, x_t, noise, t)
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
    assert probe_loss() < 0.5 * before
