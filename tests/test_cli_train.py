"""``changen train generator`` end to end on a tiny sample world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from changen.cli.train import app as train_app
from changen.data.imageio import read_image
from changen.data.world import write_sample_world
from changen.engine.checkpoint import load_state
from changen.engine.metrics import read_metrics
from changen.errors import ConfigError, DataError, OutputExistsError
from changen.synthesis.gan import GanConfig

TINY = ("--preset", "tiny", "--size", "32", "--batch-size", "2", "--workers", "0")
RUNTIME = ("--accelerator", "cpu", "--log-every", "1", "--no-progress")


pytestmark = pytest.mark.usefixtures("one_thread")


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(train_app, name="train")

    @app.callback()
    def _root() -> None:
        """Test app holding only the train commands."""

    return app


def invoke(*args: str | Path):
    return CliRunner().invoke(make_app(), ["train", "generator", *map(str, args)])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_world(tmp_path_factory.mktemp("world") / "w", n=5, seed=1, size=64)


def test_train_writes_the_run_folder_and_resumes(world: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = invoke(
        world, "--out", run, *TINY, *RUNTIME,
        "--steps", "4", "--save-every", "2", "--sample-every", "2", "--keep", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "trained to step 4" in result.output
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last", "step-4"]  # keep 1
    last = ckpts / "last"
    config = json.loads((last / "config.json").read_text())
    assert set(config) >= {"kind", "gan", "taxonomy", "train", "step", "changen_version"}
    assert config["kind"] == "changen_gan" and config["step"] == 4
    assert config["taxonomy"]["name"] == "openearthmap"
    gan = GanConfig.from_dict(config["gan"])
    assert gan.num_classes == 9 and config["class_ids"] == list(range(9))
    assert config["train"]["size"] == 32 and config["train"]["events"]["events"]
    run_config = json.loads((run / "config.json").read_text())
    assert run_config == {k: v for k, v in config.items() if k != "step"}
    g = load_file(str(last / "generator.safetensors"))
    ema = load_file(str(last / "generator_ema.safetensors"))
    assert g.keys() == ema.keys() and any(not torch.equal(g[k], ema[k]) for k in g)
    assert load_file(str(last / "discriminator.safetensors"))
    state = load_state(last)
    assert {"optimizer_g", "optimizer_d", "ema", "step", "data", "rng"} <= set(state)
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-2.png", "step-4.png"]
    grid = read_image(run / "samples" / "step-4.png")
    assert grid.ndim == 3 and grid.shape[0] > grid.shape[1]  # five rows, one column
    assert [s for s, _ in read_metrics(run / "metrics.csv")] == [1, 2, 3, 4]
    assert (run / "losses.png").stat().st_size > 1000

    # a non-empty run folder is refused without --resume
    again = invoke(world, "--out", run, *TINY, *RUNTIME, "--steps", "4")
    assert isinstance(again.exception, OutputExistsError)

    # --resume continues to more steps; settings fixed by the run are refused
    refused = invoke("--out", run, "--resume", "--size", "64", *RUNTIME)
    assert isinstance(refused.exception, ConfigError) and "--size" in str(refused.exception)
    resumed = invoke("--out", run, "--resume", "--steps", "6", *RUNTIME)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((last / "config.json").read_text())["step"] == 6
    assert [s for s, _ in read_metrics(run / "metrics.csv")] == [1, 2, 3, 4, 5, 6]


def test_checkpoint_loads_as_a_synthesizer(world: Path, tmp_path: Path) -> None:
    from changen.data.readers import open_dataset
    from changen.synthesis import SynthesisBatch, load_synthesizer

    run = tmp_path / "run"
    result = invoke(world, "--out", run, *TINY, *RUNTIME, "--steps", "1")
    assert result.exit_code == 0, result.output
    synth = load_synthesizer(run, device="cpu")  # a run folder stands for its last checkpoint
    assert synth.config()["checkpoint"] == str((run / "checkpoints" / "last").resolve())
    scene = open_dataset(world)[0]
    mask = scene.mask[None, :32, :32]
    batch = SynthesisBatch(scene.image[None, :32, :32], mask, mask)
    out = synth(batch, [np.random.default_rng(0)])
    assert out.shape == (1, 32, 32, 3) and out.dtype == np.uint8


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("--size", "48"), ConfigError, "multiple of 32"),
        (("--size", "128"), DataError, "smaller than the 128×128 training crop"),
        (("--precision", "fp16"), ConfigError, "precision"),
        (("--scale", "2:1"), ConfigError, "--scale"),
    ],
)
def test_bad_options_are_one_line_errors(
    world: Path, tmp_path: Path, args: tuple[str, ...], error: type, message: str
) -> None:
    result = invoke(world, "--out", tmp_path / "run", *TINY[2:], *RUNTIME, *args)
    assert isinstance(result.exception, error), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_missing_data_and_empty_dataset(tmp_path: Path) -> None:
    result = invoke("--out", tmp_path / "run", *RUNTIME)
    assert isinstance(result.exception, ConfigError) and "DATA" in str(result.exception)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(empty, "--out", tmp_path / "run", *RUNTIME)
    assert isinstance(result.exception, DataError)
    nothing = invoke("--out", tmp_path / "fresh", "--resume", *RUNTIME)
    assert isinstance(nothing.exception, DataError) and "no checkpoint" in str(nothing.exception)
