"""Generation with the Changen GAN (a tiny random checkpoint): same bytes for other batch sizes
and worker counts at a fixed torch thread count; a checkpoint of other classes is refused
before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from changen.engine.checkpoint import save_checkpoint
from changen.errors import ConfigError
from changen.generation import RunOptions, generate_dataset
from changen.sample import Taxonomy
from changen.synthesis.gan import ChangenGenerator, preset
from changen.taxonomies import BINARY_BUILDING, OPENEARTHMAP
from fixtures_generation import config, dataset_files, world_source


def tiny_checkpoint(path: Path, taxonomy: Taxonomy) -> Path:
    gan = preset("tiny", num_classes=taxonomy.num_classes)
    torch.manual_seed(0)
    meta = {"kind": "changen_gan", "gan": gan.to_dict(), "taxonomy": taxonomy.to_dict()}
    return save_checkpoint(path, {"generator_ema": ChangenGenerator(gan.generator)}, meta)


def test_gan_output_is_identical_for_batches_and_workers(tmp_path: Path) -> None:
    source = world_source(tmp_path / "src", n=2)
    checkpoint = tiny_checkpoint(tmp_path / "gan", OPENEARTHMAP)
    cfg = config(source, synthesizer=str(checkpoint), synthesizer_options={"device": "cpu"})
    runs = {
        "b1w0": RunOptions(batch_size=1, workers=0, threads=1),
        "b3w1": RunOptions(batch_size=3, workers=1, threads=1),
    }
    files = {}
    for key, run in runs.items():
        assert generate_dataset(cfg, tmp_path / key, run).stats.written == 4
        files[key] = dataset_files(tmp_path / key)
    assert files["b1w0"] == files["b3w1"]
    assert files["b1w0"]["B/world_00000_v00.png"] != files["b1w0"]["A/world_00000_v00.png"]


def test_checkpoint_of_other_classes_is_refused_before_any_work(tmp_path: Path) -> None:
    source = world_source(tmp_path / "src", n=1)
    checkpoint = tiny_checkpoint(tmp_path / "gan", BINARY_BUILDING)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="differs from the generator's 'binary_building'"):
        generate_dataset(config(source, synthesizer=str(checkpoint)), out, RunOptions(workers=0))
    assert not out.exists()
