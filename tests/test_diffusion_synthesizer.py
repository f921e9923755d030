"""The diffusion synthesizer on tiny pixel-space RS-DiT checkpoints built here (no trainer):
batch invariance, pre-event guidance, any size, time series, ``changen generate`` (labelled
and unlabeled) with provenance, the gallery, and one-line errors for bad options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from changen.cli.demo import demo
from changen.cli.gallery import gallery
from changen.cli.generate import generate
from changen.data.readers import open_dataset
from changen.data.world import WorldConfig, render_scene
from changen.engine.checkpoint import save_checkpoint
from changen.errors import ChangenError, ConfigError
from changen.events import ChangeProcess, simulate
from changen.events.unlabeled import OBJECT_TAXONOMY
from changen.sample import Taxonomy
from changen.synthesis import load_synthesizer
from changen.synthesis.base import SynthesisBatch
from changen.synthesis.classes import model_class_ids
from changen.synthesis.diffusion.labels import LabelSpec
from changen.synthesis.diffusion.model import (
    DiffusionModelConfig,
    build_denoiser,
    checkpoint_config,
)
from changen.synthesis.diffusion.rsdit import preset_config
from changen.synthesis.diffusion.schedule import ScheduleConfig
from changen.synthesis.diffusion.synthesizer import DiffusionSynthesizer
from changen.synthesis.diffusion.unet import preset_config as unet_config
from changen.synthesis.series import synthesize_series
from changen.taxonomies import OPENEARTHMAP

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_checkpoint(
    path: Path, taxonomy: Taxonomy = OPENEARTHMAP, encoding: str = "onehot", family: str = "rsdit"
) -> Path:
    """A pixel-space tiny RS-DiT (or ldm UNet) with random non-zero weights, as a checkpoint."""
    labels = LabelSpec(encoding, taxonomy.num_classes)
    if family == "rsdit":
        network = preset_config("tiny", in_channels=3, label_channels=labels.channels, depth=2)
        schedule = ScheduleConfig()
    else:
        network = unet_config("tiny", labels, in_channels=3)
        schedule = ScheduleConfig(learn_sigma=False)
    config = DiffusionModelConfig(
        family=family,
        network=network if isinstance(network, dict) else network.to_dict(),
        schedule=schedule,
        labels=labels,
        image_size=32,
        class_ids=model_class_ids(taxonomy),
        taxonomy=taxonomy.to_dict(),
    )
    torch.manual_seed(0)
    net = build_denoiser(config)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # adaLN-Zero outputs 0 at init
    return save_checkpoint(path, {"denoiser": net, "denoiser_ema": net}, checkpoint_config(config))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "onehot")


@pytest.fixture(scope="module")
def unet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "unet", family="ldm")


@pytest.fixture(scope="module")
def contour_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "contour", OBJECT_TAXONOMY, "contour")


def pair_batch(n: int, h: int = 32, w: int = 32, seed: int = 0) -> SynthesisBatch:
    """Random images, blocky OpenEarthMap masks and a changed square per sample."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    t1 = np.repeat(np.repeat(rng.integers(1, 9, (n, h // 4 + 1, w // 4 + 1)), 4, 1), 4, 2)
    t1 = t1[:, :h, :w].astype(np.uint8)
    t2 = t1.copy()
    for b in range(n):
        r, c = rng.integers(0, h - 10), rng.integers(0, w - 10)
        t2[b, r : r + 10, c : c + 10] = 8 if t1[b, r, c] != 8 else 2
    return SynthesisBatch(t1_image=image, t1_mask=t1, t2_mask=t2)


def rngs(*seeds: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds]


def test_a_sample_does_not_depend_on_its_batch(checkpoint: Path) -> None:
    synth = DiffusionSynthesizer.from_checkpoint(checkpoint, device="cpu", steps=4)
    batch = pair_batch(3)
    together = synth(batch, rngs(0, 1, 2))
    for b in range(3):
        alone = SynthesisBatch(batch.t1_image[b : b + 1], batch.t1_mask[b : b + 1],
                               batch.t2_mask[b : b + 1])  # fmt: skip
        assert np.array_equal(synth(alone, rngs(b))[0], together[b])
    assert not np.array_equal(together[0], together[1])


@pytest.mark.parametrize("family", ["rsdit", "ldm"])
@pytest.mark.parametrize("size", [(32, 32), (40, 27)])
def test_switch_one_keeps_unchanged_pixels_to_the_pre_event_image(
    checkpoint: Path, unet_checkpoint: Path, size: tuple[int, int], family: str
) -> None:
    """Pixel space: exact. Sizes that are not multiples of 2 (RS-DiT's patch, the tiny UNet's
    one downsampling) are padded and cropped."""
    path = checkpoint if family == "rsdit" else unet_checkpoint
    synth = DiffusionSynthesizer.from_checkpoint(path, device="cpu", steps=4, switch=1.0)
    batch = pair_batch(2, *size)
    out = synth(batch, rngs(5, 6))
    assert out.shape == batch.t1_image.shape and out.dtype == np.uint8
    changed = batch.t1_mask != batch.t2_mask
    assert np.array_equal(out[~changed], batch.t1_image[~changed])
    assert np.abs(out[changed].astype(int) - batch.t1_image[changed]).mean() > 5


def test_a_lower_switch_lets_unchanged_regions_vary(checkpoint: Path) -> None:
    synth = DiffusionSynthesizer.from_checkpoint(checkpoint, device="cpu", steps=4, switch=0.5)
    batch = pair_batch(1)
    out = synth(batch, rngs(5))
    unchanged = batch.t1_mask == batch.t2_mask
    assert not np.array_equal(out[unchanged], batch.t1_image[unchanged])


def test_resolution_scaling_and_provenance(checkpoint: Path) -> None:
    """A model trained at 32² samples 64×96; config() records the sampling and the weights."""
    synth = load_synthesizer(checkpoint, device="cpu", steps=3, sampler="ddpm", switch=0.5)
    assert isinstance(synth, DiffusionSynthesizer)
    assert synth(pair_batch(1, 64, 96), rngs(0)).shape == (1, 64, 96, 3)
    config = synth.config()
    two_phase = {"N": 3, "N_max": 3, "N_min": 1}
    assert config["sampling"] == {"sampler": "ddpm", "steps": 3, "switch": 0.5, "eta": 0.0,
                                  "start": None, "two_phase": two_phase}  # fmt: skip
    assert config["checkpoint"] == str(checkpoint.resolve()) and len(config["weights_sha256"]) == 64
    assert config["family"] == "rsdit" and config["latent"] == {"kind": "pixel"}
    json.dumps(config)


def test_a_three_step_series_builds_on_each_synthetic_image(checkpoint: Path) -> None:
    rng = np.random.default_rng(3)
    scene = render_scene(rng, WorldConfig(size=32))
    process = ChangeProcess.from_flags("create,remove", count=(1, 2), min_area=4, steps=3)
    chain = simulate(scene.mask, process, rng, instances=scene.instances, taxonomy=OPENEARTHMAP)
    synth = DiffusionSynthesizer.from_checkpoint(checkpoint, device="cpu", steps=3)
    series = synthesize_series(synth, scene.image, chain, np.random.default_rng(4))
    assert series.shape == (4, 32, 32, 3)
    for t in range(1, 4):
        kept = chain.masks[t - 1] == chain.masks[t]
        assert np.array_equal(series[t][kept], series[t - 1][kept])
    assert any(not np.array_equal(series[t], series[t - 1]) for t in range(1, 4))


# -- the command line -------------------------------------------------------------------------


def invoke(*args: str | Path):
    app = typer.Typer()
    app.command("generate")(generate)
    app.command("gallery")(gallery)
    app.command("demo")(demo)

    @app.callback()
    def _root() -> None:
        """Test app."""

    return CliRunner().invoke(app, [*map(str, args)])


def base_args(source: Path, out: Path, checkpoint: Path) -> list[str | Path]:
    return ["generate", source, "--out", out, "--synthesizer", checkpoint, "--limit", "2",
            "--events", "remove", "--count", "1:2", "--workers", "0", "--threads", "1",
            "--device", "cpu", "--no-progress"]  # fmt: skip


def test_generate_then_gallery_with_a_diffusion_checkpoint(
    source: Path, tmp_path: Path, checkpoint: Path
) -> None:
    out = tmp_path / "out"
    args = [*base_args(source, out, checkpoint), "--sampling-steps", "3", "--switch", "0.8"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    dataset = open_dataset(out)
    assert len(dataset) == 2 and dataset.format == "levircd"
    saved = json.loads((out / "generation.json").read_text())["config"]["synthesizer"]
    assert saved["name"] == "changen_diffusion"
    two_phase = {"N": 3, "N_max": 3, "N_min": 1}
    assert saved["config"]["sampling"] == {"sampler": "ddim", "steps": 3, "switch": 0.8,
                                           "eta": 0.0, "start": None,
                                           "two_phase": two_phase}  # fmt: skip
    sample = dataset[0]
    assert not np.array_equal(sample.t1_image, sample.t2_image)
    page = invoke("gallery", out, "--limit", "2", "--thumb", "32")
    assert page.exit_code == 0, page.output
    assert (out / "gallery" / "index.html").read_text().count('class="card"') == 2


def test_demo_with_a_diffusion_checkpoint(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "demo"
    result = invoke("demo", "--out", out, "--synthesizer", checkpoint, "--n", "2", "--size", "32",
                    "--sampling-steps", "2", "--sampler", "ddpm", "--workers", "0",
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "dataset" / "generation.json").read_text())["config"]
    assert saved["synthesizer"]["config"]["sampling"]["sampler"] == "ddpm"
    assert (out / "dataset" / "gallery" / "index.html").is_file()


@pytest.mark.parametrize("mode", ["instances", "felzenszwalb"])
def test_unlabeled_generate_writes_binary_labels(
    source: Path, tmp_path: Path, contour_checkpoint: Path, mode: str
) -> None:
    out = tmp_path / "out"
    args = [*base_args(source, out, contour_checkpoint), "--unlabeled", mode,
            "--sampling-steps", "2"]  # fmt: skip
    args[args.index("remove")] = "create,remove"
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "generation.json").read_text())["config"]
    assert saved["unlabeled"] == mode and saved["taxonomy"]["name"] == OBJECT_TAXONOMY.name
    dataset = open_dataset(out)
    labels = np.stack([dataset[i].change_mask for i in range(len(dataset))])
    assert set(np.unique(labels)) <= {0, 1} and labels.any()


@pytest.mark.parametrize(
    ("extra", "contour", "message"),
    [
        ([], True, "model synthesises from instance outlines; pass --unlabeled"),
        (["--unlabeled", "slic"], False, "onehot-conditioned model needs class masks"),
        (["--sampler", "euler"], False, "unknown sampler 'euler'; choose one of ddim, ddpm"),
        (["--sampling-steps", "5000"], False, "sampling steps=5000 must be within 1..1000"),
        (["--unlabeled", "sam"], False, "--unlabeled 'sam': choose one of none, instances"),
    ],
)
def test_bad_diffusion_options_are_one_line_errors(
    source: Path,
    tmp_path: Path,
    checkpoint: Path,
    contour_checkpoint: Path,
    extra: list[str],
    contour: bool,
    message: str,
) -> None:
    out = tmp_path / "out"
    result = invoke(*base_args(source, out, contour_checkpoint if contour else checkpoint), *extra)
    assert isinstance(result.exception, ChangenError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not out.exists()


def test_sampling_flags_are_refused_by_synthesizers_that_do_not_sample(
    source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke("generate", source, "--out", out, "--synthesizer", "copy_paste",
                    "--sampling-steps", "10", "--workers", "0", "--no-progress")  # fmt: skip
    assert isinstance(result.exception, ConfigError), result.output
    assert "--sampling-steps applies to synthesizers that sample in steps" in str(result.exception)
    assert not out.exists()
