"""Changen GAN networks: shapes, ranges, spectral norm placement, configs, determinism."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from timm.models.resnet import BasicBlock, ResNet
from torch import nn
from torch.nn.utils import parametrize

from changen.errors import ConfigError, DataError
from changen.synthesis.base import SynthesisBatch
from changen.synthesis.gan import (
    PRESETS,
    ChangenGenerator,
    DiscriminatorConfig,
    GanConfig,
    GeneratorConfig,
    SegDiscriminator,
    preset,
    sample_noise,
)
from changen.synthesis.gan.layers import SpatiallyAdaptiveNorm
from changen.synthesis.gan.synthesizer import STRIDE, GanSynthesizer, pad_amounts
from changen.synthesis.gan.transition import Destyle

TINY = PRESETS["tiny"]
WIDER = {"resnet_channels": (8, 16, 16, 24), "feature_channels": (24, 16, 16, 8, 8, 4)}


def tiny(name: str, num_classes: int, **widths: tuple[int, ...]) -> GanConfig:
    """Preset ``name`` (its switches and norm) at test widths."""
    paper = PRESETS[name].generator
    g = dataclasses.replace(
        TINY.generator,
        use_encoder=paper.use_encoder,
        masking=paper.masking,
        destyling=paper.destyling,
        norm=paper.norm,
        z_dim=min(paper.z_dim, 4),
        num_classes=num_classes,
        **widths,
    )
    return GanConfig(g, dataclasses.replace(TINY.discriminator, num_classes=num_classes))


def batch(b: int, h: int, w: int, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    t1 = torch.randint(0, n, (b, h, w), generator=g)
    t2 = torch.randint(0, n, (b, h, w), generator=g)
    return image, t1, t2


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def is_spectral(conv: nn.Conv2d) -> bool:
    return parametrize.is_parametrized(conv, "weight") and any(
        type(p).__name__ == "_SpectralNorm" for p in conv.parametrizations["weight"]
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize(("h", "w", "num_classes"), [(64, 64, 2), (96, 64, 9)])
def test_generator_and_discriminator_shapes(name: str, num_classes: int, h: int, w: int) -> None:
    config = tiny(name, num_classes)
    gen = ChangenGenerator(config.generator)
    disc = SegDiscriminator(config.discriminator)
    image, t1, t2 = batch(2, h, w, num_classes)
    out = gen(image, t1, t2, generator=seeded(0)).detach()
    assert out.shape == (2, 3, h, w)
    assert out.dtype == torch.float32
    assert float(out.min()) >= -1 and float(out.max()) <= 1
    assert float(out.std()) > 1e-3
    assert disc(out).shape == (2, num_classes + 1, h, w)


def test_other_widths_and_one_full_size_forward() -> None:
    config = tiny("changen", 3, **WIDER)
    gen = ChangenGenerator(config.generator).eval()
    image, t1, t2 = batch(1, 256, 256, 3)
    out = gen(image, t1, t2, generator=seeded(0))
    assert out.shape == (1, 3, 256, 256)
    assert float(out.detach().abs().max()) <= 1
    features = gen.encoder(image)
    assert [tuple(f.shape[1:]) for f in features] == [
        (c, 256 // 2 ** (5 - i), 256 // 2 ** (5 - i))
        for i, c in enumerate(WIDER["feature_channels"])
    ]


def test_paper_widths_match_the_paper() -> None:
    gen = ChangenGenerator(PRESETS["changen"].generator).eval()
    image, t1, t2 = batch(1, 64, 64, 2)
    shapes = [tuple(f.shape[1:]) for f in gen.encoder(image)]
    assert shapes == [(512 // 2**i, 64 // 2 ** (5 - i), 64 // 2 ** (5 - i)) for i in range(6)]
    assert len(gen.blocks) == 6 and len(gen.transitions) == 6
    assert gen(image, t1, t2, generator=seeded(0)).shape == (1, 3, 64, 64)


def test_spectral_norm_on_every_conv_but_modulation_and_destyling() -> None:
    config = tiny("changen", 3)
    gen = ChangenGenerator(config.generator)
    disc = SegDiscriminator(config.discriminator)
    plain = set()
    for module in gen.modules():
        if isinstance(module, SpatiallyAdaptiveNorm | Destyle):
            plain |= {id(m) for m in module.modules() if isinstance(m, nn.Conv2d)}
    convs = {
        "encoder": list(gen.encoder.modules()),
        "decoder": [
            m
            for part in (gen.head, gen.blocks, gen.to_rgb)
            for m in part.modules()
            if id(m) not in plain
        ],
        "discriminator": list(disc.modules()),
    }
    for part, modules in convs.items():
        found = [m for m in modules if isinstance(m, nn.Conv2d)]
        assert found, part
        assert all(is_spectral(m) for m in found), part
    modulation = [m for m in gen.modules() if id(m) in plain]
    assert len(modulation) > 6 * 3
    assert not any(is_spectral(m) for m in modulation)
    assert is_spectral(gen.encoder.backbone.conv1)
    assert is_spectral(gen.encoder.backbone.layer4[1].conv2)


def test_baselines_have_no_encoder_and_ignore_the_pre_event_image() -> None:
    for name, z in (("oasis_gpcm", 4), ("spade_gpcm", 0)):
        gen = ChangenGenerator(tiny(name, 3).generator).eval()
        assert gen.encoder is None and len(gen.transitions) == 0
        assert gen.config.z_dim == z
        image, t1, t2 = batch(2, 64, 64, 3)
        a = gen(image, t1, t2, generator=seeded(1))
        b = gen(None, None, t2, generator=seeded(1))
        assert torch.equal(a, b)
    assert PRESETS["spade_gpcm"].generator.norm == "batch"


def test_noise_changes_output_only_with_z() -> None:
    image, t1, t2 = batch(2, 64, 64, 3)
    spade = ChangenGenerator(tiny("spade_gpcm", 3).generator).eval()
    assert torch.equal(spade(None, None, t2, generator=seeded(0)), spade(None, None, t2))
    gen = ChangenGenerator(tiny("changen", 3).generator).eval()
    assert not torch.equal(
        gen(image, t1, t2, generator=seeded(0)), gen(image, t1, t2, generator=seeded(1))
    )


def test_determinism_with_seeded_generator() -> None:
    torch.manual_seed(123)
    gen = ChangenGenerator(tiny("changen", 3).generator).eval()
    image, t1, t2 = batch(2, 64, 64, 3)
    a = gen(image, t1, t2, generator=seeded(7))
    state = torch.random.get_rng_state()
    b = gen(image, t1, t2, generator=seeded(7))
    assert torch.equal(a, b)
    assert torch.equal(state, torch.random.get_rng_state()), "global RNG was touched"
    explicit = gen(image, t1, t2, noise=sample_noise(2, 4, seeded(7)))
    assert torch.equal(a, explicit)
    pixel_noise = torch.randn(2, 4, 64, 64, generator=seeded(3))
    assert gen(image, t1, t2, noise=pixel_noise).shape == (2, 3, 64, 64)


def test_state_dict_round_trip_reproduces_outputs() -> None:
    config = tiny("changen", 3).generator
    torch.manual_seed(5)
    a = ChangenGenerator(config).eval()
    b = ChangenGenerator(config).eval()
    b.load_state_dict(a.state_dict())
    image, t1, t2 = batch(1, 64, 64, 3)
    assert torch.equal(a(image, t1, t2, generator=seeded(0)), b(image, t1, t2, generator=seeded(0)))


def test_ignore_pixels_condition_as_background() -> None:
    gen = ChangenGenerator(tiny("changen", 3).generator).eval()
    image, t1, t2 = batch(1, 64, 64, 3)
    t1[:, :8], t2[:, -8:] = 255, 255
    t1_bg, t2_bg = t1.clone(), t2.clone()
    t1_bg[t1_bg == 255], t2_bg[t2_bg == 255] = 0, 0
    assert torch.equal(
        gen(image, t1, t2, generator=seeded(0)), gen(image, t1_bg, t2_bg, generator=seeded(0))
    )


def test_bad_inputs_raise_actionable_errors() -> None:
    gen = ChangenGenerator(tiny("changen", 3).generator).eval()
    image, t1, t2 = batch(1, 64, 64, 3)
    with pytest.raises(DataError, match="multiple of 32"):
        gen(image[..., :48], t1[..., :48], t2[..., :48])
    with pytest.raises(DataError, match="class ids"):
        gen(image, t1, t2 + 5)
    with pytest.raises(DataError, match="integer"):
        gen(image, t1, t2.float())
    with pytest.raises(DataError, match="pre-event"):
        gen(None, None, t2)
    with pytest.raises(DataError, match="noise"):
        gen(image, t1, t2, noise=torch.zeros(1, 5))


def test_every_generator_parameter_gets_a_gradient() -> None:
    config = tiny("changen", 3)
    gen, disc = ChangenGenerator(config.generator), SegDiscriminator(config.discriminator)
    image, t1, t2 = batch(2, 64, 64, 3)
    disc(gen(image, t1, t2, generator=seeded(0))).square().mean().backward()
    missing = [n for n, p in gen.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []
    assert all(p.grad is not None for p in disc.parameters())


def test_config_round_trip_and_validation() -> None:
    for name in PRESETS:
        config = preset(name, num_classes=9)
        data = json.loads(json.dumps(config.to_dict()))
        assert GanConfig.from_dict(data) == config
        assert config.num_classes == 9
    assert preset("changen", 9, object_classes=(8,)).generator.object_classes == (8,)
    assert GeneratorConfig(num_classes=4).masking == "objects+changed"
    with pytest.raises(ConfigError, match="unknown GAN preset"):
        preset("stylegan")
    with pytest.raises(ConfigError, match="unknown"):
        GeneratorConfig.from_dict({"num_classes": 2, "colour": 1})
    with pytest.raises(ConfigError, match="feature_channels"):
        GeneratorConfig(feature_channels=(256, 128, 64, 32, 16, 8))
    with pytest.raises(ConfigError, match="ignore_index"):
        GeneratorConfig(num_classes=300)
    with pytest.raises(ConfigError, match="classes"):
        GanConfig(GeneratorConfig(num_classes=2), DiscriminatorConfig(num_classes=3))
    with pytest.raises(ConfigError, match="norm"):
        GeneratorConfig(norm="layer")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.generator.z_dim = 3  # type: ignore[misc]


def test_encoder_weights_load_from_a_local_file(tmp_path) -> None:
    config = tiny("changen", 3).generator
    torch.manual_seed(0)
    source = ResNet(BasicBlock, (2, 2, 2, 2), num_classes=10, channels=config.resnet_channels)
    path = tmp_path / "r18.safetensors"
    save_file(source.state_dict(), path)
    gen = ChangenGenerator(config, encoder_weights=path)
    loaded = gen.encoder.backbone.layer2[0].conv1.parametrizations.weight.original
    assert torch.equal(loaded, source.layer2[0].conv1.weight)
    with pytest.raises(ConfigError, match="not found"):
        ChangenGenerator(config, encoder_weights=tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="do not fit"):
        ChangenGenerator(dataclasses.replace(config, **WIDER), encoder_weights=path)


def edge_bands(syn: GanSynthesizer, size: int) -> list[float]:
    """Brightness of the outer 2 rows / columns (top, bottom, left, right) minus that of the
    interior rows / columns at the same offset modulo 32, on constant inputs (where the output
    of a network without a border is periodic in 32, the coarsest cell)."""
    outs = []
    for value, cls in ((60, 2), (120, 7), (160, 3)):
        image = np.full((2, size, size, 3), value, np.uint8)
        mask = np.full((2, size, size), cls, np.uint8)
        rngs = [np.random.default_rng(i) for i in range(2)]
        outs.append(syn(SynthesisBatch(image, mask, mask.copy()), rngs))
    out = np.concatenate(outs).astype(float).mean(-1)
    idx = np.arange(size)
    phase = (idx + pad_amounts(size, syn.context)[0]) % STRIDE
    inner = (idx >= 48) & (idx < size - 48)
    bands = []
    for profile in (out.mean(axis=(0, 2)), out.mean(axis=(0, 1))):
        for edge in (idx < 2, idx >= size - 2):
            reference = profile[inner & np.isin(phase, phase[edge])].mean()
            bands.append(float(profile[edge].mean() - reference))
    return bands


def test_no_band_along_the_edges_of_a_larger_crop(one_thread: None) -> None:
    """The demo generator, trained at 64², on 160² crops: its zero-padded border shows as dark
    or bright edge lines unless the synthesizer gives it reflected context."""
    folder = Path(str(resources.files("changen"))) / "assets" / "demo_gan"
    bare = edge_bands(GanSynthesizer.from_checkpoint(folder, device="cpu", context=0), 160)
    assert max(abs(b) for b in bare) > 12, bare
    bands = edge_bands(GanSynthesizer.from_checkpoint(folder, device="cpu"), 160)
    assert max(abs(b) for b in bands) < 8, bands
