"""One seeding convention: ``simulate --seed S`` writes the masks and events ``generate --seed S``
simulates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from changen.cli.app import app
from changen.data.imageio import read_image
from changen.generation.shards import read_rows
from changen.seeding import events_rng, item_rng, sample_rngs
from fixtures_generation import world_source


def test_events_rng_is_the_first_child_of_the_sample_sequence() -> None:
    events, _ = sample_rngs(7, 3)
    assert events_rng(7, 3).integers(1 << 62) == events.integers(1 << 62)
    assert item_rng(7, 3).integers(1 << 62) != events_rng(7, 3).integers(1 << 62)


@pytest.mark.parametrize("seed", [0, 5])
def test_simulate_writes_what_generate_simulates(tmp_path: Path, seed: int) -> None:
    source = world_source(tmp_path / "src", n=3)
    runner = CliRunner()
    common = ["--seed", str(seed)]
    gen = runner.invoke(
        app,
        [
            "generate",
            str(source),
            "--out",
            str(tmp_path / "gen"),
            "--workers",
            "0",
            "--no-progress",
            *common,
        ],
    )
    assert gen.exit_code == 0, gen.output
    sim = runner.invoke(
        app, ["simulate", str(source), "--out", str(tmp_path / "sim"), "--no-preview", *common]
    )
    assert sim.exit_code == 0, sim.output
    simulated: dict[str, list[dict]] = {}
    for line in (tmp_path / "sim" / "events.jsonl").read_text().splitlines():
        record = json.loads(line)
        simulated.setdefault(record.pop("item"), []).append(record)
    rows = read_rows(tmp_path / "gen")
    assert len(rows) == 3 and sum(len(r["events"]) for r in rows) > 0
    for row in rows:
        item = row["source"]["item"]
        assert row["events"] == simulated.get(item, [])
        label = read_image(tmp_path / "gen" / "label" / f"{row['name']}.png")
        change = read_image(tmp_path / "sim" / "change" / f"{item}_t0_t1.png")
        np.testing.assert_array_equal(label, change)
