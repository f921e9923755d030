"""``changen export``: Parquet, the Hub layout and WebDataset shards of a generated dataset and
of a SECOND dataset — bytes equal to the stored PNGs, loading with ``datasets`` and
``webdataset`` (skipped when absent), and one-line errors that leave nothing behind.

WebDataset's key rule (``webdataset/tariterators.py``, ``base_plus_ext``): a member's key is its
path up to the first dot of the file name, the rest its field; members of one key must follow
each other in the tar.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from changen.cli.app import main
from changen.data.imageio import read_image
from changen.data.readers import open_dataset
from changen.errors import ConfigError, OutputExistsError
from changen.generation import RunOptions, SplitSpec, generate_dataset
from changen.generation.export import FIELDS, export_dataset, wds_key
from changen.generation.shards import read_rows
from fixtures_change import build_second_dataset
from fixtures_generation import config, register_fakes, world_source

SPEC = SplitSpec.parse("train=0.6,val=0.2,test=0.2")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated LEVIR-CD dataset with splits (10 sources × 2 variants, 32²)."""
    root = tmp_path_factory.mktemp("export")
    source = world_source(root / "src", n=10, size=32)
    with pytest.MonkeyPatch.context() as patch:
        register_fakes(patch)
        generate_dataset(config(source, splits=SPEC), root / "out", RunOptions(workers=0))
    return root / "out"


def _stored(dataset: Path, split: str, name: str) -> dict[str, bytes]:
    folders = {"t1_image": "A", "t2_image": "B", "t1_mask": "A_mask", "t2_mask": "B_mask"}
    files = {f: dataset / split / d / f"{name}.png" for f, d in folders.items()}
    files["change_mask"] = dataset / split / "label" / f"{name}.png"
    return {f: p.read_bytes() for f, p in files.items()}


def test_parquet_round_trip_keeps_the_stored_bytes(dataset: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "pq"
    result = export_dataset(dataset, out, "parquet")
    assert sorted(result.files) == ["test.parquet", "train.parquet", "val.parquet"]
    assert sum(result.splits.values()) == 20
    rows = {(o["split"], o["name"]): r for r in read_rows(dataset) for o in r["outputs"]}
    for split, n in result.splits.items():
        table = pq.read_table(out / f"{split}.parquet").to_pylist()
        assert len(table) == n
        for record in table:
            stored = _stored(dataset, split, record["image_name"])
            assert {f: record[f]["bytes"] for f in FIELDS} == stored
            assert record["split"] == split
            row = json.loads(record["provenance"])
            assert row["index"] == rows[(split, record["image_name"])]["index"]


def test_parquet_loads_with_datasets(dataset: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "pq"
    export_dataset(dataset, out, "parquet")
    files = {s: str(out / f"{s}.parquet") for s in ("train", "val", "test")}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "c"))
    record = loaded["val"][0]
    name = record["image_name"]
    expected = read_image(dataset / "val" / "A" / f"{name}.png")
    np.testing.assert_array_equal(np.asarray(record["t1_image"]), expected)
    assert set(np.unique(np.asarray(record["change_mask"]))) <= {0, 255}
    assert sum(len(loaded[s]) for s in files) == 20


def test_hub_layout_loads_from_its_folder(dataset: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hub"
    result = export_dataset(dataset, out, "hf")
    assert "data/train-00000-of-00001.parquet" in result.files
    assert (out / "README.md").read_text().startswith("---\nconfigs:\n")
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "c"))
    assert {s: len(loaded[s]) for s in loaded} == result.splits


def test_webdataset_shards_follow_the_key_rule(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "wds"
    result = export_dataset(dataset, out, "webdataset", shard_size=3)
    train = sorted((out / "train").glob("train-*.tar"))
    assert len(train) == -(-result.splits["train"] // 3)
    keys: list[str] = []
    with tarfile.open(train[0]) as tar:
        members = tar.getmembers()
        assert {m.mtime for m in members} == {0}
        for m in members:
            key, _, suffix = m.name.partition(".")
            if not keys or keys[-1] != key:
                assert key not in keys  # a key's members are contiguous
                keys.append(key)
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            if suffix == "json":
                meta = json.loads(data)
                assert wds_key(meta["image_name"]) == key and meta["split"] == "train"
            else:
                field = suffix.removesuffix(".png")
                assert data == _stored(dataset, "train", key)[field]
    assert len(keys) == 3
    again = export_dataset(dataset, tmp_path / "wds2", "webdataset", shard_size=3)
    assert again.files == result.files
    assert all((out / f).read_bytes() == (tmp_path / "wds2" / f).read_bytes() for f in result.files)


def test_webdataset_loads_with_webdataset(dataset: Path, tmp_path: Path) -> None:
    wds = pytest.importorskip("webdataset")
    out = tmp_path / "wds"
    result = export_dataset(dataset, out, "webdataset")
    urls = [str(p) for p in sorted((out / "val").glob("*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert len(samples) == result.splits["val"]
    first = samples[0]
    name = json.loads(first["json"])["image_name"]
    assert first["t2_image.png"] == _stored(dataset, "val", name)["t2_image"]


def test_second_export_encodes_rgb_labels_as_class_ids(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    truth = build_second_dataset(tmp_path / "second", rng, names=("a.1", "b"))
    out = tmp_path / "pq"
    result = export_dataset(tmp_path / "second", out, "parquet", split="test")
    assert result.splits == {"test": 2}
    for record in pq.read_table(out / "test.parquet").to_pylist():
        t1, _, l1, _, change = truth[("test", record["image_name"])]
        decoded = {f: np.asarray(Image.open(io.BytesIO(record[f]["bytes"]))) for f in FIELDS}
        np.testing.assert_array_equal(decoded["t1_image"], t1)
        np.testing.assert_array_equal(decoded["t1_mask"], l1)
        np.testing.assert_array_equal(decoded["change_mask"], change * 255)


@pytest.mark.usefixtures("fake_synthesizers")
def test_geotiff_pairs_are_encoded_as_png(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    source = world_source(tmp_path / "src", n=2, size=32)
    tifs = tmp_path / "tifs"
    generate_dataset(config(source, layout="geotiff", per_image=1), tifs, RunOptions(workers=0))
    export_dataset(tifs, tmp_path / "pq", "parquet")
    reader = open_dataset(tifs)
    for i, record in enumerate(pq.read_table(tmp_path / "pq" / "train.parquet").to_pylist()):
        sample = reader[i]
        assert record["image_name"] == sample.name and record["split"] == "train"
        decoded = {f: np.asarray(Image.open(io.BytesIO(record[f]["bytes"]))) for f in FIELDS}
        np.testing.assert_array_equal(decoded["t2_image"], sample.t2_image)
        np.testing.assert_array_equal(decoded["t1_mask"], sample.t1_mask)
        np.testing.assert_array_equal(decoded["change_mask"], 255 * (sample.change_mask == 1))


def test_bad_exports_are_one_line_errors(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--to 'zip': choose one of hf, parquet, webdataset"):
        export_dataset(dataset, tmp_path / "x", "zip")
    with pytest.raises(ConfigError, match="no split 'dev'; choose one of: train, val, test"):
        export_dataset(dataset, tmp_path / "x", "parquet", split="dev")
    scenes = world_source(tmp_path / "scenes", n=1, size=32)
    with pytest.raises(ConfigError, match="holds single-temporal scenes; export takes a change"):
        export_dataset(scenes, tmp_path / "x", "parquet")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        export_dataset(dataset, busy, "parquet")
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "x").exists()
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".changen-lock"))
    assert left == ["busy", "scenes"]  # writer locks aside


def test_cli_export_json_and_one_line_errors(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "wds"
    args = ["export", str(dataset), "--to", "webdataset", "--out", str(out), "--json"]
    monkeypatch.setattr(sys, "argv", ["changen", *args])
    main()
    summary = json.loads(capsys.readouterr().out)
    assert summary["to"] == "webdataset" and sum(summary["splits"].values()) == 20
    monkeypatch.setattr(sys, "argv", ["changen", *args[:-1], "--split", "dev"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "no split 'dev'" in err
