"""The Ray executor on a local 2-CPU Ray: same bytes as the local executor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from changen.generation import RunOptions, generate_dataset
from fixtures_generation import config, dataset_files, world_source

ray = pytest.importorskip("ray", reason="Ray Data is an optional extra (changen[distributed])")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        object_store_memory=80 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield
    ray.shutdown()


def test_ray_executor_writes_the_local_executors_bytes(local_ray: None, tmp_path: Path) -> None:
    source = world_source(tmp_path / "src", n=3)
    cfg = config(source, synthesizer="copy_paste", steps=2)  # registered in every Ray worker
    local = generate_dataset(cfg, tmp_path / "local", RunOptions(workers=0, batch_size=4))
    distributed = generate_dataset(
        cfg, tmp_path / "ray", RunOptions(executor="ray", workers=1, batch_size=3)
    )
    assert distributed.stats.written == local.stats.written == 6
    assert distributed.stats.pairs == 12
    files = dataset_files(tmp_path / "ray")
    assert files == dataset_files(tmp_path / "local")
    assert sum(name.startswith("series/") for name in files) == 6 * 6
