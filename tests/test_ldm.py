"""ChangeAnywhere's semantic latent diffusion: the mask-concatenating UNet family and
two-phase sampling (N, N_max, N_min) over the masked sampler."""

from __future__ import annotations

import itertools

import pytest
import torch

from changen.errors import ConfigError
from changen.synthesis.diffusion.labels import LabelSpec
from changen.synthesis.diffusion.model import DiffusionModelConfig, build_denoiser, conditioned
from changen.synthesis.diffusion.objective import DiffusionObjective, training_noise
from changen.synthesis.diffusion.sampling import (
    SamplingConfig,
    forward_noise,
    latent_change,
    randn,
    sample,
)
from changen.synthesis.diffusion.unet import (
    PAPER_SCHEDULE,
    SemanticUNet,
    build_unet,
    preset_config,
    resample_labels,
)

SIZE = 16  # latent side


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def tiny(labels: LabelSpec = LabelSpec("onehot", 4), seed: int = 0) -> SemanticUNet:
    torch.manual_seed(seed)
    return build_unet(preset_config("tiny", labels)).eval()


def one_hot(ids: torch.Tensor, k: int = 4) -> torch.Tensor:
    return LabelSpec("onehot", k).encode(ids.to(torch.uint8))


@pytest.mark.parametrize(
    ("labels", "factor", "side"),
    [
        (LabelSpec("onehot", 5), 1, 16),
        (LabelSpec("onehot", 9), 4, 24),
        (LabelSpec("index", 9), 4, 16),
        (LabelSpec("binary", 2), 2, 8),
        (LabelSpec("contour", 2), 4, 16),
    ],
)
def test_the_unet_predicts_eps_of_the_latents_shape(
    labels: LabelSpec, factor: int, side: int
) -> None:
    net = tiny(labels)
    x = torch.randn(2, 3, side, side)
    label_map = torch.rand(2, labels.channels, side * factor, side * factor)
    with torch.no_grad():
        out = net(x, torch.tensor([0, 999]), label_map)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert net.label_resample == ("max" if labels.encoding in ("binary", "contour") else "nearest")


def test_presets_build_through_the_family_table() -> None:
    config = DiffusionModelConfig(
        family="ldm",
        network=preset_config("small", LabelSpec("onehot", 9), in_channels=4),
        schedule=PAPER_SCHEDULE,
        labels=LabelSpec("onehot", 9),
    )
    net = build_denoiser(DiffusionModelConfig.from_dict(config.to_dict()))  # JSON round trip
    assert isinstance(net, SemanticUNet) and net.unet.config.in_channels == 13
    denoise = conditioned(net, torch.rand(1, 9, 32, 32))
    with torch.no_grad():
        assert denoise(torch.randn(1, 4, 8, 8), torch.tensor([10])).shape == (1, 4, 8, 8)
    with torch.device("meta"):  # the paper's size, without allocating it
        paper = build_unet(preset_config("paper", LabelSpec("onehot", 9)))
    assert paper.unet.config.block_out_channels == (128, 512, 1024)
    assert sum(p.numel() for p in paper.parameters()) == 215_236_227


def test_label_maps_reach_the_latent_grid_by_the_documented_rule() -> None:
    ids = torch.zeros(1, 8, 8, dtype=torch.long)
    ids[0, 1, :] = 1  # a thin line off the cells' centres
    ids[0, 4:, 4:] = 2
    onehot = one_hot(ids, 3)
    nearest = resample_labels(onehot, (2, 2), "nearest")
    assert nearest.argmax(1).tolist() == [[[0, 0], [0, 2]]] and nearest.sum(1).eq(1).all()
    assert resample_labels(onehot[:, 1:2], (2, 2), "max").tolist() == [[[[1.0, 1.0], [0, 0]]]]
    maps = torch.rand(2, 3, 48, 60)
    for size in ((16, 12), (8, 20), (48, 60), (5, 7)):  # whole and fractional factors
        exact = torch.nn.functional.interpolate(maps, size=size, mode="nearest-exact")
        assert torch.equal(resample_labels(maps, size, "nearest"), exact)
    assert resample_labels(onehot[:, 1:2], (2, 2), "area")[0, 0, 0, 0] == pytest.approx(0.25)


def test_bad_unet_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown UNet preset"):
        preset_config("huge")
    with pytest.raises(ConfigError, match="remove them"):
        build_unet({**preset_config("tiny"), "hidden_size": 3})
    with pytest.raises(ConfigError, match="out_channels is the latent's"):
        build_unet({**preset_config("tiny"), "out_channels": 6})
    with pytest.raises(ConfigError, match="label_resample 'bilinear'"):
        build_unet({**preset_config("tiny"), "label_resample": "bilinear"})
    with pytest.raises(ConfigError, match="do not build a UNet2DModel"):
        build_unet({**preset_config("tiny"), "down_block_types": ["DownBlock2D"]})
    with pytest.raises(ConfigError, match="predicts ε only"):
        build_unet({**preset_config("tiny"), "learn_sigma": True})
    with pytest.raises(ConfigError, match="label map has 2 channels"):
        tiny()(torch.randn(1, 3, 8, 8), torch.tensor([1]), torch.rand(1, 2, 8, 8))


def test_changing_the_mask_at_one_place_changes_the_output_mostly_there(one_thread: None) -> None:
    net = tiny()
    side = 32  # latent cells; the labels at 4x
    ids = torch.zeros(1, side * 4, side * 4, dtype=torch.long)
    edited = ids.clone()
    edited[0, 8:24, 8:24] = 2  # latent cells 2..5
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([500])
    with torch.no_grad():
        diff = (net(x, t, one_hot(ids)) - net(x, t, one_hot(edited))).abs().mean(1)[0]
    there, far = diff[2:6, 2:6].mean(), diff[16:, 16:].mean()  # far: 10+ cells away
    assert there > 10 * far > 0  # GroupNorm statistics reach everywhere, a little


# -- two-phase sampling ------------------------------------------------------------------------


def test_n_nmax_nmin_map_onto_the_masked_sampler() -> None:
    full = SamplingConfig.from_two_phase(50, n_min=10)
    assert (full.start, full.switch, full.masked_steps, full.n_max, full.n_min) == (
        None,
        0.8,
        40,
        50,
        10,
    )
    short = SamplingConfig.from_two_phase(50, 30, 7, eta=0.5)
    assert (short.start, short.masked_steps, short.n_min) == (30, 23, 7)
    data = short.to_dict()
    assert data["two_phase"] == {"N": 50, "N_max": 30, "N_min": 7}
    assert SamplingConfig.from_dict(data) == short
    assert SamplingConfig().to_dict()["two_phase"] == {"N": 50, "N_max": 50, "N_min": 0}
    with pytest.raises(ConfigError, match=r"N_min=31 must be within 0\.\.N_max=30"):
        SamplingConfig.from_two_phase(50, 30, 31)
    with pytest.raises(ConfigError, match=r"N_max=60 must be within 1\.\.N=50"):
        SamplingConfig.from_two_phase(50, 60, 10)
    with pytest.raises(ConfigError, match="unknown sampling settings"):
        SamplingConfig.from_dict({**data, "nmin": 3})


def _two_phase(
    net: SemanticUNet,
    config: SamplingConfig,
    changed_rows: int = 8,
    seeds: tuple[int, ...] = (3, 4),
    trace: list[tuple[int, torch.Tensor, torch.Tensor]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pre-event latent, changed cells (expanded to the channels) and the post-event sample."""
    n = len(seeds)
    pre = torch.stack([torch.rand(3, SIZE, SIZE, generator=g) for g in gens(*seeds)]) * 2 - 1
    change = torch.zeros(n, SIZE, SIZE)
    change[:, :changed_rows] = 1
    post = torch.zeros(n, SIZE, SIZE, dtype=torch.long)
    post[:, :changed_rows] = 3
    with torch.no_grad():
        out = sample(
            conditioned(net, one_hot(post)),
            PAPER_SCHEDULE,
            pre.shape,
            gens(*seeds),
            config,
            pre_latent=pre,
            change=latent_change(change, (SIZE, SIZE)),
            trace=None if trace is None else lambda i, x, k: trace.append((i, x.clone(), k)),
        )
    return pre, change.bool()[:, None].expand(-1, 3, -1, -1), out


def test_phase_one_keeps_the_noised_pre_event_latent_exactly() -> None:
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    config = SamplingConfig.from_two_phase(10, n_min=3)
    _, changed, _ = _two_phase(tiny(), config, trace=seen)
    assert [i for i, _, _ in seen] == list(range(7))  # N_max − N_min masked steps
    for _, x, known in seen:
        assert torch.equal(x[~changed], known[~changed])


def test_with_n_min_zero_and_no_change_the_output_is_the_pre_event_latent() -> None:
    pre, _, out = _two_phase(tiny(), SamplingConfig.from_two_phase(10, n_min=0), changed_rows=0)
    assert torch.equal(out, pre)


def test_phase_two_alters_unchanged_regions_more_with_larger_n_min(one_thread: None) -> None:
    net = tiny()
    drift = []
    for n_min in (0, 1, 3, 6):
        pre, changed, out = _two_phase(net, SamplingConfig.from_two_phase(10, n_min=n_min))
        drift.append(float((out - pre)[~changed].abs().mean()))
    assert drift[0] == 0 and all(a < b for a, b in itertools.pairwise(drift))


def test_a_shorter_run_starts_from_the_noised_pre_event_latent() -> None:
    net = tiny()
    config = SamplingConfig.from_two_phase(10, 6, 2)
    inputs: list[torch.Tensor] = []
    pre = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    labels = one_hot(torch.zeros(1, SIZE, SIZE, dtype=torch.long))

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inputs.append(x.clone())
        return net(x, t, labels)

    with torch.no_grad():
        sample(
            denoise,
            PAPER_SCHEDULE,
            pre.shape,
            gens(5),
            config,
            pre_latent=pre,
            change=torch.ones(1, SIZE, SIZE),
        )
    scheduler = PAPER_SCHEDULE.sampler("ddim", 10)
    generator = gens(5)
    randn(pre.shape, generator, pre)  # x_T, drawn and unused
    start = forward_noise(
        scheduler, pre, randn(pre.shape, generator, pre), int(scheduler.timesteps[4])
    )
    assert len(inputs) == 6 and torch.equal(inputs[0], start)
    with pytest.raises(ConfigError, match="give pre_latent"):
        sample(denoise, PAPER_SCHEDULE, pre.shape, gens(5), config)


def test_a_sample_does_not_depend_on_its_batch(one_thread: None) -> None:
    config = SamplingConfig.from_two_phase(6, n_min=2, eta=0.5)
    _, _, together = _two_phase(tiny(), config, seeds=(7, 8, 9))
    _, _, alone = _two_phase(tiny(), config, seeds=(8,))
    # the same draws; convolutions batched differently round differently
    assert torch.allclose(together[1:2], alone, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(together[0:1], alone, rtol=1e-2)


def test_a_few_steps_of_the_eps_loss_lower_it(one_thread: None) -> None:
    """Pixel-space images made of their label map: 40 AdamW steps of the ε-MSE at least
    halve the loss on the same noise draws."""
    net = tiny(seed=1).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0)
    scheduler = PAPER_SCHEDULE.training()
    objective = DiffusionObjective(scheduler)
    gen = torch.Generator().manual_seed(0)
    ids = (torch.rand(8, 4, 4, generator=gen) * 4).long().repeat_interleave(4, 1)
    ids = ids.repeat_interleave(4, 2)
    labels = one_hot(ids)
    x0 = labels[:, 1:] * 2 - 1  # 3 channels: classes 1..3
    probe = training_noise(scheduler, x0, torch.Generator().manual_seed(5))

    def probe_loss() -> float:
        x_t, noise, t = probe
        with torch.no_grad():
            loss, parts = objective(net(x_t, t, labels), x0, x_t, noise, t)
        assert set(parts) == {"mse"}  # ε only: no variance to learn
        return float(loss.mean())

    before = probe_loss()
    for _ in range(40):
        x_t, noise, t = training_noise(scheduler, x0, gen)
        loss, _ = objective(net(x_t, t, labels), x0, x_t, noise, t)
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
    assert probe_loss() < 0.5 * before
