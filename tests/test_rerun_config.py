"""``changen generate --config generation.json`` remakes a dataset byte for byte; the card and
``generation.json`` record the versions, the command line and the source's licence."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from unittest import mock

import pytest
from typer.testing import CliRunner

from changen.cli.app import app
from changen.data.convert import convert
from changen.data.readers import open_dataset
from changen.data.readers.base import UNKNOWN_LICENCE
from changen.data.readers.change_folders import LevirCDReader
from changen.data.readers.pooled import PooledReader
from changen.data.readers.xview2 import XView2Reader
from changen.errors import DataError
from changen.generation.card import provenance_lines
from changen.generation.rerun import read_request
from fixtures_generation import world_source

pytestmark = pytest.mark.usefixtures("fake_synthesizers")

FLAGS = (
    "--synthesizer", "noise_fill", "--layout", "geotiff", "--per-image", "2", "--seed", "3",
    "--events", "remove,reclass", "--count", "1:2", "--fill", "surrounding",
    "--split", "train=0.5,val=0.5", "--shard-size", "2", "--workers", "0", "--no-progress",
)  # fmt: skip


def invoke(*args: str | Path):
    """Run ``changen ARGS`` in-process, with the ``sys.argv`` the console script would see."""
    argv = [*map(str, args)]
    with mock.patch.object(sys, "argv", ["/venv/bin/changen", *argv]):
        return CliRunner().invoke(app, argv)


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def without_timing(path: Path) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "timing"} for row in rows]


def test_config_rerun_is_byte_identical(tmp_path: Path) -> None:
    source = world_source(tmp_path / "world", n=4, size=32)
    first, second = tmp_path / "first", tmp_path / "second"
    made = invoke("generate", source, "--out", first, *FLAGS)
    assert made.exit_code == 0, made.output
    again = invoke(
        "generate", "--config", first / "generation.json", "--out", second,
        "--workers", "1", "--batch-size", "3", "--no-progress",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    a, b = hashes(first), hashes(second)
    assert a.keys() == b.keys() and any(k.endswith(".tif") for k in a)
    recorded = {"README.md", "generation.json"}  # they hold each run's command line
    differ = {k for k in a if a[k] != b[k] and not k.startswith("manifest/shard-")}
    assert differ <= recorded
    for shard in (k for k in a if k.startswith("manifest/shard-")):
        assert without_timing(first / shard) == without_timing(second / shard)
    doc1, doc2 = (json.loads((d / "generation.json").read_text()) for d in (first, second))
    assert doc1["config"] == doc2["config"] and doc1["request"] == doc2["request"]
    assert doc1["environment"]["versions"] == doc2["environment"]["versions"]
    assert doc2["environment"]["command"][1:3] == ["generate", "--config"]
    card1, card2 = ((d / "README.md").read_text().splitlines() for d in (first, second))
    assert [i for i, (x, y) in enumerate(zip(card1, card2, strict=True)) if x != y] == [
        next(i for i, line in enumerate(card1) if line.startswith("changen generate"))
    ]


def test_card_and_config_record_versions_command_and_licence(tmp_path: Path) -> None:
    source = world_source(tmp_path / "world", n=2, size=32)
    out = tmp_path / "out"
    assert invoke("generate", source, "--out", out, *FLAGS).exit_code == 0
    doc = json.loads((out / "generation.json").read_text())
    versions = doc["environment"]["versions"]
    assert versions["changen"] and versions["numpy"] and versions["torch"] and versions["rasterio"]
    assert doc["environment"]["command"][1:3] == ["generate", str(source)]
    assert doc["config"]["source"]["licence"] == UNKNOWN_LICENCE
    card = (out / "README.md").read_text()
    assert f"Source licence: **{UNKNOWN_LICENCE}**" in card and "inherits that licence" in card
    assert f"changen generate {source} --out {out}" in card
    assert f"numpy {versions['numpy']}" in card


def test_licences_of_readers_and_pools() -> None:
    assert XView2Reader.licence == "CC BY-NC-SA 4.0"
    lines = provenance_lines({"source": {"licence": XView2Reader.licence}}, None)
    assert "Source licence: **CC BY-NC-SA 4.0**" in "\n".join(lines)
    pool = PooledReader.__new__(PooledReader)
    assert pool.licence == UNKNOWN_LICENCE  # the class default, before any source is pooled


def test_config_refuses_options_that_change_the_output(tmp_path: Path) -> None:
    source = world_source(tmp_path / "world", n=2, size=32)
    out = tmp_path / "out"
    assert invoke("generate", source, "--out", out, *FLAGS).exit_code == 0
    result = invoke(
        "generate", "--config", out / "generation.json", "--out", tmp_path / "x", "--seed", "4",
        "--per-image", "3",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "drop --per-image, --seed" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_config_without_a_request_record_is_one_line(tmp_path: Path) -> None:
    old = tmp_path / "generation.json"
    old.write_text(json.dumps({"config": {"seed": 0}}))
    with pytest.raises(DataError, match="no 'request' record"):
        read_request(old)
    old.write_text("{not json")
    with pytest.raises(DataError, match=r"not a readable generation\.json"):
        read_request(old)


def test_datasets_changen_wrote_keep_their_source_licence(tmp_path: Path) -> None:
    source = world_source(tmp_path / "world", n=2, size=32)
    out, converted = tmp_path / "out", tmp_path / "converted"
    assert invoke("generate", source, "--out", out, *FLAGS).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["source"]["licence"] == UNKNOWN_LICENCE
    manifest["provenance"]["source"]["licence"] = "CC BY-NC-SA 4.0"  # as from an xView2 source
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert open_dataset(out).licence == "CC BY-NC-SA 4.0"
    assert convert(out, converted, "levircd")["provenance"]["licence"] == "CC BY-NC-SA 4.0"
    assert open_dataset(converted).licence == "CC BY-NC-SA 4.0"
    assert LevirCDReader.licence.startswith("LEVIR-CD: research use only")
