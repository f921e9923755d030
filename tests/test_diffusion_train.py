"""``changen train diffusion``: scene crops, the learning signal, exact resume, run folder, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from lightning_fabric import Fabric
from safetensors.torch import load_file
from typer.testing import CliRunner

from changen.cli.train import app as train_app
from changen.data.augment import AugmentConfig
from changen.data.imageio import read_image
from changen.data.readers import open_dataset
from changen.data.world import write_sample_world
from changen.engine.config import RunConfig
from changen.engine.metrics import read_metrics
from changen.errors import ConfigError, DataError, OutputExistsError
from changen.synthesis.crops import SceneCrops
from changen.synthesis.diffusion.model import KIND, load_denoiser
from changen.synthesis.diffusion.train import DiffusionTrainer, seeded_generator, train_diffusion
from changen.synthesis.diffusion.train_config import DiffusionTrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ("--preset", "tiny", "--size", "32", "--batch-size", "2", "--workers", "0")
RUNTIME = ("--accelerator", "cpu", "--log-every", "1", "--no-progress", "--sample-steps", "2")


def cpu() -> Fabric:
    return Fabric(accelerator="cpu", devices=1)


def tiny(data: Path, **kw) -> DiffusionTrainConfig:
    base = {
        "data": str(data),
        "preset": "tiny",
        "size": 32,
        "batch_size": 2,
        "steps": 4,
        "holdout": 0.2,
        "run": RunConfig(accelerator="cpu", log_every=1, save_every=2),
        "sample_every": 2,
        "sample_steps": 2,
        "preview": 2,
    }
    return DiffusionTrainConfig(**{**base, **kw})


# -- crops -------------------------------------------------------------------------------------


def test_scene_crops_are_keyed_deterministic_and_in_model_ids(worlds: dict[str, Path]) -> None:
    reader = open_dataset(worlds["scenes"])
    crops = SceneCrops(reader, 32, seed=3, augment=AugmentConfig(64), instances=True)
    a, b = crops[(1, 2)], crops[(1, 2)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["image"].shape == (3, 32, 32) and a["image"].dtype == torch.float32
    assert float(a["image"].abs().max()) <= 1.0
    assert a["mask"].dtype == torch.uint8 and int(a["mask"].max()) < reader.taxonomy.num_classes
    assert a["instances"].dtype == torch.int32 and a["instances"].shape == (32, 32)
    assert not torch.equal(a["image"], crops[(2, 2)]["image"])  # a new epoch, a new crop
    assert "instances" not in SceneCrops(reader, 32, seed=3, augment=AugmentConfig())[(1, 2)]
    # no augmentation: the central crop of the scene
    scene = reader[2]
    central = SceneCrops(reader, 32, seed=3)[(0, 2)]
    expected = torch.from_numpy(scene.mask[16:48, 16:48].astype(np.uint8))
    assert torch.equal(central["mask"], expected)


@pytest.mark.parametrize("mode", ["felzenszwalb", "instances"])
def test_unlabeled_crops_have_agnostic_masks(worlds: dict[str, Path], mode: str) -> None:
    reader = open_dataset(worlds["scenes"])
    crops = SceneCrops(reader, 32, seed=0, unlabeled=mode)  # type: ignore[arg-type]  # a mode
    item = crops[(0, 1)]
    assert crops.taxonomy.name == "object" and set(item["mask"].unique().tolist()) <= {0, 1}
    assert torch.equal(item["mask"] > 0, item["instances"] > 0) and int(item["instances"].max())


def test_slic_proposals_run_on_the_whole_scene(tmp_path: Path) -> None:
    world = write_sample_world(tmp_path / "w", 1, 0, size=256)  # slic's 400 regions of ~160 px
    crops = SceneCrops(open_dataset(world), 64, seed=0, unlabeled="slic")
    assert int(crops[(0, 0)]["instances"].max()) > 0


# -- learning ----------------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss_of_a_fixed_batch(worlds: dict[str, Path]) -> None:
    config = tiny(worlds["scenes"], holdout=0.0, batch_size=8, lr=3e-3, ema_decay=0.0)
    trainer = DiffusionTrainer(config, cpu())
    items = [trainer.crops[(0, i)] for i in range(6)] * 2
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    batch["latent"] = batch.pop("image")
    before = [p.detach().clone() for p in trainer.ema.label.parameters()]

    def fixed_loss() -> float:  # same x_t, ε and t every time
        with torch.no_grad():
            return float(
                trainer.losses(trainer.ema, batch, seeded_generator(9, stream=5))[1]["mse"]
            )

    initial = fixed_loss()
    assert initial == pytest.approx(1.0, abs=0.05)  # adaLN-Zero: ε̂ = 0 at init
    for _ in range(10):
        trainer.update()
    assert fixed_loss() < 0.7 * initial  # broken noise/target wiring stays at ~1
    # the labels are wired in: the label embedder learned, and the output depends on them
    assert any(
        not torch.equal(p, q) for p, q in zip(before, trainer.ema.label.parameters(), strict=True)
    )
    shuffled = dict(batch, mask=batch["mask"].roll(1, 0))
    x = batch["latent"][:4]
    t = torch.full((4,), 500)
    with torch.no_grad():
        out = trainer.ema(x, t, trainer.label_map(batch)[:4])
        moved = trainer.ema(x, t, trainer.label_map(shuffled)[:4])
    assert float((out - moved).abs().mean()) > 0


# -- run folder, resume ------------------------------------------------------------------------


def test_resume_reproduces_the_uninterrupted_run(worlds: dict[str, Path], tmp_path: Path) -> None:
    straight = train_diffusion(tiny(worlds["scenes"]), tmp_path / "straight", fabric=cpu())
    assert straight.step == 4
    cut = tmp_path / "cut"
    train_diffusion(tiny(worlds["scenes"], steps=2), cut, fabric=cpu())
    resumed = train_diffusion(tiny(worlds["scenes"]), cut, resume=True, fabric=cpu())
    assert resumed.step == 4
    for name in ("denoiser", "denoiser_ema"):
        a = load_file(str(straight.checkpoint / f"{name}.safetensors"))
        b = load_file(str(resumed.checkpoint / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = read_metrics(straight.run / "metrics.csv")
    assert [s for s, _ in rows] == [1, 2, 3, 4] and {"loss", "loss_mse", "loss_vb"} <= set(
        rows[0][1]
    )
    again = read_metrics(cut / "metrics.csv")
    assert [(s, r["loss"]) for s, r in again] == [(s, r["loss"]) for s, r in rows]
    # sample grids: rows condition / real / sample, one column per held-out item
    assert sorted(p.name for p in (straight.run / "samples").iterdir()) == [
        "step-2.png",
        "step-4.png",
    ]
    grid = read_image(straight.run / "samples" / "step-4.png")
    assert grid.ndim == 3 and grid.shape[0] > grid.shape[1]
    assert (straight.run / "losses.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="size"):
        train_diffusion(tiny(worlds["scenes"], size=64), cut, resume=True, fabric=cpu())


@pytest.mark.parametrize(("family", "out_channels"), [("rsdit", 6), ("ldm", 3)])
def test_checkpoint_loads_as_a_denoiser(
    worlds: dict[str, Path], tmp_path: Path, family: str, out_channels: int
) -> None:
    config = tiny(worlds["scenes"], family=family, steps=1, sample_every=0)
    result = train_diffusion(config, tmp_path / "run", fabric=cpu())
    config_json = json.loads((result.checkpoint / "config.json").read_text())
    assert config_json["kind"] == KIND and config_json["step"] == 1
    assert config_json["train"]["labels"] == "onehot"
    network, model_config, latent = load_denoiser(result.checkpoint)
    assert model_config.family == family and model_config.image_size == 32
    assert model_config.labels.num_classes == 9 and model_config.class_ids == tuple(range(9))
    assert latent.describe() == {"kind": "pixel"}
    assert model_config.schedule.learn_sigma == (family == "rsdit")
    out = network(torch.zeros(1, 3, 32, 32), torch.tensor([10]), torch.zeros(1, 9, 32, 32))
    assert out.shape == (1, out_channels, 32, 32)  # RS-DiT learns sigma, the UNet does not


def test_unlabeled_mode_trains_a_contour_model(worlds: dict[str, Path], tmp_path: Path) -> None:
    config = tiny(worlds["scenes"], unlabeled="felzenszwalb", steps=1, preview=1)
    result = train_diffusion(config, tmp_path / "run", fabric=cpu())
    _, model_config, _ = load_denoiser(result.checkpoint)
    assert model_config.labels.encoding == "contour" and model_config.labels.channels == 1
    assert model_config.taxonomy["name"] == "object"


def test_latent_cache_encodes_each_item_once(worlds: dict[str, Path], tmp_path: Path) -> None:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
        layers_per_block=1,
    ).save_pretrained(tmp_path / "ae")
    config = tiny(worlds["scenes"], latent=str(tmp_path / "ae"), cache_latents=True, holdout=0.0)
    trainer = DiffusionTrainer(config, cpu())
    assert trainer.model_config.latent == str((tmp_path / "ae").resolve())
    for _ in range(4):  # 8 draws over 6 items: the second epoch hits the cache
        trainer.update()
    assert sorted(trainer.cache.items) == list(range(6))
    cached = trainer.cache.item(3)
    fresh = trainer.crops[(0, 3)]  # the epoch-0 crop, whatever the epoch
    assert cached["latent"].shape == (4, 16, 16)
    assert torch.equal(cached["latent"], trainer.latent.encode(fresh["image"][None])[0])
    assert torch.equal(cached["mask"], fresh["mask"])


# -- CLI ---------------------------------------------------------------------------------------


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(train_app, name="train")

    @app.callback()
    def _root() -> None:
        """Test app holding only the train commands."""

    return app


def invoke(*args: str | Path):
    return CliRunner().invoke(make_app(), ["train", "diffusion", *map(str, args)])


def test_cli_trains_resumes_and_refuses_a_used_folder(
    worlds: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = invoke(worlds["scenes"], "--out", run, *TINY, *RUNTIME, "--steps", "2")
    assert result.exit_code == 0, result.output
    assert "trained to step 2" in result.output
    assert json.loads((run / "config.json").read_text())["kind"] == KIND
    again = invoke(worlds["scenes"], "--out", run, *TINY, *RUNTIME, "--steps", "2")
    assert isinstance(again.exception, OutputExistsError)
    refused = invoke("--out", run, "--resume", "--lr", "0.1", *RUNTIME)
    assert isinstance(refused.exception, ConfigError) and "--lr" in str(refused.exception)
    resumed = invoke("--out", run, "--resume", "--steps", "3", *RUNTIME)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run / "checkpoints" / "last" / "config.json").read_text())["step"] == 3


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("--size", "36"), ConfigError, "multiple of 8"),
        (("--size", "128"), DataError, "smaller than the 128×128 training crop"),
        (("--preset", "huge"), ConfigError, "is not a rsdit preset"),
        (("--family", "gan"), ConfigError, "--family 'gan'"),
        (("--labels", "rgb"), ConfigError, "--labels 'rgb'"),
        (("--unlabeled", "sam"), ConfigError, "--unlabeled 'sam'"),
        (("--latent", "no/such/vae"), ConfigError, "latent space 'no/such/vae'"),
        (("--ema-decay", "1.5"), ConfigError, "--ema-decay"),
        (("--precision", "fp16"), ConfigError, "precision"),
    ],
)
def test_bad_options_are_one_line_errors(
    worlds: dict[str, Path], tmp_path: Path, args: tuple[str, ...], error: type, message: str
) -> None:
    run = tmp_path / "run"
    result = invoke(worlds["scenes"], "--out", run, *TINY, *RUNTIME, "--steps", "1", *args)
    assert isinstance(result.exception, error), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not run.exists()  # a failed new run leaves nothing behind


def test_change_datasets_and_missing_data_are_refused(
    worlds: dict[str, Path], tmp_path: Path
) -> None:
    result = invoke(worlds["pairs"], "--out", tmp_path / "run", *TINY, *RUNTIME)
    assert isinstance(result.exception, DataError) and "single-temporal" in str(result.exception)
    missing = invoke("--out", tmp_path / "run", *RUNTIME)
    assert isinstance(missing.exception, ConfigError) and "DATA" in str(missing.exception)
    nothing = invoke("--out", tmp_path / "fresh", "--resume", *RUNTIME)
    assert isinstance(nothing.exception, DataError) and "no checkpoint" in str(nothing.exception)
