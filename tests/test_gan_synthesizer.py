"""GanSynthesizer: conventions, batch invariance, any size, bf16, checkpoints, taxonomies."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from changen.engine.checkpoint import save_checkpoint
from changen.errors import ConfigError, DataError
from changen.sample import Taxonomy
from changen.synthesis import load_synthesizer
from changen.synthesis.base import SynthesisBatch, torch_seed
from changen.synthesis.classes import class_lut, model_class_ids, to_model_ids
from changen.synthesis.gan import ChangenGenerator, preset, sample_noise
from changen.synthesis.gan.synthesizer import GanSynthesizer, forward_chunks
from changen.taxonomies import LOVEDA, OPENEARTHMAP

TAX = OPENEARTHMAP
N = TAX.num_classes


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_generator(seed: int = 0, num_classes: int = N) -> ChangenGenerator:
    torch.manual_seed(seed)
    return ChangenGenerator(preset("tiny", num_classes=num_classes).generator)


def inputs(b: int, h: int, w: int, seed: int = 1) -> SynthesisBatch:
    """Images with smooth structure and blocky masks (random ids per 8×8 cell)."""
    r = np.random.default_rng(seed)
    image = r.integers(0, 256, (b, h, w, 3), dtype=np.uint8)
    cells = r.integers(0, N, (2, b, -(-h // 8), -(-w // 8)), dtype=np.uint8)
    masks = cells.repeat(8, axis=2).repeat(8, axis=3)[:, :, :h, :w]
    return SynthesisBatch(image, np.ascontiguousarray(masks[0]), np.ascontiguousarray(masks[1]))


def rngs(indices: list[int] | range) -> list[np.random.Generator]:
    return [np.random.default_rng([7, int(i)]) for i in indices]


def subset(batch: SynthesisBatch, idx: list[int]) -> SynthesisBatch:
    return SynthesisBatch(batch.t1_image[idx], batch.t1_mask[idx], batch.t2_mask[idx])


def write_checkpoint(
    path: Path,
    generator: ChangenGenerator,
    ema: ChangenGenerator,
    taxonomy: Taxonomy = TAX,
    class_ids: list[int] | None = None,
) -> Path:
    gan = preset("tiny", num_classes=generator.config.num_classes)
    config = {
        "kind": "changen_gan",
        "gan": gan.to_dict(),
        "taxonomy": taxonomy.to_dict(),
        "train": {"preset": "tiny"},
        "step": 12,
        "changen_version": "test",
        "class_ids": list(model_class_ids(taxonomy)) if class_ids is None else class_ids,
    }
    models = {"generator": generator, "generator_ema": ema}
    return save_checkpoint(path, models, config, {"step": 12})


def test_output_follows_the_training_conventions() -> None:
    """uint8 → x/127.5 - 1, per-sample noise from torch_seed(rng), (y + 1)·127.5 rounded."""
    gen = tiny_generator()
    batch = inputs(2, 64, 64)
    out = GanSynthesizer(gen, TAX)(batch, rngs([0, 1]))
    image = torch.from_numpy(batch.t1_image).permute(0, 3, 1, 2).contiguous() / 127.5 - 1
    noise = torch.cat(
        [sample_noise(1, 4, torch.Generator().manual_seed(torch_seed(r))) for r in rngs([0, 1])]
    )
    with torch.no_grad():
        y = gen.eval()(
            image,
            torch.from_numpy(batch.t1_mask).long(),
            torch.from_numpy(batch.t2_mask).long(),
            noise=noise,
        )
    expected = ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert out.dtype == np.uint8 and out.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(out, expected.numpy())
    assert out.std() > 1.0


@pytest.mark.parametrize("threads", [1, 2])
def test_per_sample_outputs_do_not_depend_on_the_batch(threads: int) -> None:
    """fp32 on CPU: bitwise equal alone, in any order, in any sub-batch (see forward_chunks)."""
    torch.set_num_threads(threads)
    syn = GanSynthesizer(tiny_generator(), TAX)
    batch = inputs(5, 32, 64)
    whole = syn(batch, rngs(range(5)))
    for i in range(5):
        np.testing.assert_array_equal(syn(subset(batch, [i]), rngs([i]))[0], whole[i])
    order = [3, 1, 4, 0, 2]
    np.testing.assert_array_equal(syn(subset(batch, order), rngs(order)), whole[order])
    np.testing.assert_array_equal(syn(subset(batch, [4, 2]), rngs([4, 2])), whole[[4, 2]])


def test_single_thread_batches_above_fifteen_match() -> None:
    """One thread: 17 samples run as 15 + a doubled one and equal the samples alone."""
    assert [len(rows) for rows, _ in forward_chunks(17)] == [15, 2]
    assert forward_chunks(1) == [([0, 0], 1)]
    assert forward_chunks(3, invariant=False) == [([0, 1, 2], 3)]
    syn = GanSynthesizer(tiny_generator(), TAX)
    batch = inputs(17, 64, 64)
    whole = syn(batch, rngs(range(17)))
    for i in (0, 14, 16):
        np.testing.assert_array_equal(syn(subset(batch, [i]), rngs([i]))[0], whole[i])


def test_noise_comes_from_each_samples_generator() -> None:
    syn = GanSynthesizer(tiny_generator(), TAX)
    batch = inputs(2, 32, 32)
    a = syn(batch, rngs([0, 1]))
    np.testing.assert_array_equal(syn(batch, rngs([0, 1])), a)
    b = syn(batch, rngs([5, 6]))
    assert np.abs(a.astype(int) - b).mean() > 0.5


@pytest.mark.parametrize(("h", "w"), [(64, 64), (96, 96), (100, 132), (20, 7)])
def test_any_size_is_padded_and_cropped_back(h: int, w: int) -> None:
    syn = GanSynthesizer(tiny_generator(), TAX)
    batch = inputs(2, h, w)
    out = syn(batch, rngs([0, 1]))
    assert out.shape == (2, h, w, 3) and out.dtype == np.uint8
    assert out.std() > 1.0
    np.testing.assert_array_equal(syn(subset(batch, [1]), rngs([1]))[0], out[1])


def test_bf16_channels_last_runs_close_to_fp32() -> None:
    gen = tiny_generator()
    batch = inputs(2, 64, 64)
    fp32 = GanSynthesizer(gen, TAX)(batch, rngs([0, 1])).astype(float)
    fast = GanSynthesizer(gen, TAX, precision="bf16", channels_last=True)
    assert fast.config()["precision"] == "bf16" and fast.config()["channels_last"]
    out = fast(batch, rngs([0, 1]))
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.uint8
    diff = np.abs(out - fp32)
    assert diff.mean() < 4.0, diff.mean()
    assert np.corrcoef(out.ravel(), fp32.ravel())[0, 1] > 0.95


def test_cpu_defaults_to_fp32_and_leaves_the_module_alone() -> None:
    gen = tiny_generator().train()
    syn = GanSynthesizer(gen, TAX)
    assert (syn.precision, syn.channels_last) == ("fp32", False)
    assert gen.training and all(p.requires_grad for p in gen.parameters())
    assert not syn.generator.training
    with pytest.raises(ConfigError, match="precision"):
        GanSynthesizer(gen, TAX, precision="fp8")
    wrapper = torch.nn.Module()
    wrapper.module = gen  # as DDP holds it
    batch = inputs(2, 32, 32)
    np.testing.assert_array_equal(
        GanSynthesizer(wrapper, TAX)(batch, rngs([0, 1])), syn(batch, rngs([0, 1]))
    )
    with pytest.raises(ConfigError, match="needs a ChangenGenerator"):
        GanSynthesizer(torch.nn.Conv2d(1, 1, 1), TAX)


def test_from_checkpoint_loads_ema_weights_by_default(tmp_path: Path) -> None:
    raw, ema = tiny_generator(0), tiny_generator(1)
    path = write_checkpoint(tmp_path / "ckpt", raw, ema)
    batch = inputs(2, 32, 32)
    loaded = GanSynthesizer.from_checkpoint(path, context=0)  # as the bare constructor
    out = loaded(batch, rngs([0, 1]))
    np.testing.assert_array_equal(out, GanSynthesizer(ema, TAX)(batch, rngs([0, 1])))
    plain = GanSynthesizer.from_checkpoint(path, use_ema=False, context=0)
    np.testing.assert_array_equal(
        plain(batch, rngs([0, 1])), GanSynthesizer(raw, TAX)(batch, rngs([0, 1]))
    )
    assert not np.array_equal(plain(batch, rngs([0, 1])), out)
    config = json.loads(json.dumps(loaded.config()))
    assert config["name"] == "changen_gan" and config["step"] == 12
    assert config["checkpoint"] == str(path.resolve()) and config["use_ema"] is True
    assert config["generator"] == ema.config.to_dict()
    assert config["weights_sha256"] == GanSynthesizer(ema, TAX).config()["weights_sha256"]
    assert config["weights_sha256"] != plain.config()["weights_sha256"]
    assert loaded.taxonomy == TAX


def test_load_synthesizer_accepts_a_checkpoint_folder(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "ckpt", tiny_generator(), tiny_generator())
    syn = load_synthesizer(path, precision="bf16")
    assert isinstance(syn, GanSynthesizer) and syn.precision == "bf16"


def test_only_generator_ema_and_config_are_needed(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "ckpt", tiny_generator(), tiny_generator())
    for name in ("generator.safetensors", "state.pt"):
        (path / name).unlink()
    GanSynthesizer.from_checkpoint(path)
    with pytest.raises(DataError, match="generator"):
        GanSynthesizer.from_checkpoint(path, use_ema=False)


def test_checkpoint_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "det", {}, {"kind": "changestar"})
    with pytest.raises(ConfigError, match="changestar"):
        GanSynthesizer.from_checkpoint(path)


def test_checkpoint_trained_with_another_class_order_is_refused(tmp_path: Path) -> None:
    order = [1, 0, 2, 3, 4, 5, 6, 7, 8]
    path = write_checkpoint(tmp_path / "ckpt", tiny_generator(), tiny_generator(), class_ids=order)
    with pytest.raises(DataError, match="trained with model classes"):
        GanSynthesizer.from_checkpoint(path)


def test_check_taxonomy_names_both() -> None:
    syn = GanSynthesizer(tiny_generator(), TAX)
    recoloured = dataclasses.replace(
        TAX, classes=tuple(dataclasses.replace(c, color=(1, 2, 3)) for c in TAX.classes)
    )
    syn.check_taxonomy(recoloured)
    other = dataclasses.replace(
        TAX, name="renamed_classes", classes=(dataclasses.replace(TAX.classes[0], name="x"),)
    )
    other = dataclasses.replace(other, classes=other.classes + TAX.classes[1:])
    with pytest.raises(ConfigError, match=r"renamed_classes.*openearthmap"):
        syn.check_taxonomy(other)


def test_class_count_must_match_the_taxonomy() -> None:
    with pytest.raises(ConfigError, match="7 classes but the generator has 9"):
        GanSynthesizer(tiny_generator(num_classes=9), LOVEDA)


def test_undefined_mask_ids_are_an_error() -> None:
    syn = GanSynthesizer(tiny_generator(), TAX)
    batch = inputs(1, 32, 32)
    batch.t2_mask[0, :4, :4] = 42
    with pytest.raises(DataError, match=r"t2_mask holds class ids \[42\]"):
        syn(batch, rngs([0]))
    with pytest.raises(DataError, match="one random generator per sample"):
        syn(inputs(2, 32, 32), rngs([0]))


def test_class_mapping_puts_background_first_and_keeps_ignore() -> None:
    assert model_class_ids(TAX) == tuple(range(9))
    assert model_class_ids(LOVEDA) == (1, 2, 3, 4, 5, 6, 7)
    lut = class_lut(LOVEDA)
    mask = np.array([[0, 1, 2], [7, 3, 0]], np.uint8)
    np.testing.assert_array_equal(to_model_ids(mask, lut, LOVEDA, "m"), [[255, 0, 1], [6, 2, 255]])
    syn = GanSynthesizer(tiny_generator(num_classes=7), LOVEDA)
    batch = inputs(2, 32, 32)
    batch.t1_mask[:] = np.clip(batch.t1_mask, 0, 7)
    batch.t2_mask[:] = np.clip(batch.t2_mask, 0, 7)
    assert syn(batch, rngs([0, 1])).shape == (2, 32, 32, 3)
