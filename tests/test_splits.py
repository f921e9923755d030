"""Splits: ``generate --split`` by source item (layout, loaders, leaks, determinism, resume,
card), SECOND with splits and its binary/RGB labels, and readers keeping a source's splits.

The field's loaders are not installed here, so each one's file lookup is reproduced as its
source has it (torchgeo's only runs when torchgeo is importable):

* torchgeo ``LEVIRCD`` (``torchgeo/datasets/levircd.py``, ``LEVIRCD._check_integrity`` and
  ``LEVIRCD._load_files``, v0.6–0.8.1): ``<root>/A``, ``B``, ``label`` must exist; files are
  ``sorted(glob(<root>/A/<split>*.png))`` and the same for ``B/`` and ``label/``, zipped in
  that order (so ``root`` is our ``<out>/<split>`` and names start with the split);
* Open-CD (``opencd/datasets/basecddataset.py``, ``BaseCDDataset.load_data_list``, with the
  ``data_prefix`` of ``configs/_base_/datasets/levir_cd.py``): every ``.png`` under
  ``<data_root>/<split>/A`` (recursive), the same relative name in ``<split>/B`` (both lists
  must match) and in ``<split>/label``;
* torchange (``torchange/data/levircd.py``, ``LEVIRCD.__init__``): ``sorted(glob(<dataset_dir>/
  A/*.png))``, B and label paths by ``fp.replace('A', 'B')`` / ``fp.replace('A', 'label')`` on
  the whole path (so the path must hold no other capital A).
"""

from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from changen.cli.app import main
from changen.data.imageio import read_image
from changen.data.readers import open_dataset
from changen.data.readers.loveda import LoveDAReader
from changen.data.readers.openearthmap import OpenEarthMapReader
from changen.data.writers import SecondRGBWriter
from changen.errors import ConfigError, DataError
from changen.generation import RunOptions, SplitSpec, generate_dataset
from changen.generation.plan import Plan
from changen.generation.shards import read_rows
from changen.sample import ChangeSample
from changen.taxonomies import OPENEARTHMAP, SECOND_DING
from fixtures_change import second_labels
from fixtures_generation import config, dataset_files, register_fakes, world_source
from fixtures_scenes import make_loveda_dataset

pytestmark = pytest.mark.usefixtures("fake_synthesizers", "one_thread")

SPEC = SplitSpec.parse("train=0.6,val=0.2,test=0.2")
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten 32² scenes: every split of ``SPEC`` gets at least one of them with seed 0."""
    return world_source(tmp_path_factory.mktemp("split-world") / "src", n=10, size=32)


@pytest.fixture(scope="module")
def split_out(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("split-out") / "out"
    with pytest.MonkeyPatch.context() as patch:
        register_fakes(patch)
        generate_dataset(config(world, splits=SPEC), out, RunOptions(workers=0))
    return out


def torchgeo_files(root: Path, split: str) -> list[tuple[str, str, str]]:
    assert all(os.path.exists(os.path.join(root, d)) for d in ("A", "B", "label"))
    found = [sorted(glob.glob(os.path.join(root, d, f"{split}*.png"))) for d in ("A", "B", "label")]
    return list(zip(*found, strict=False))


def opencd_files(data_root: Path, split: str) -> list[tuple[str, str, str]]:
    def listed(sub: str) -> list[str]:
        top = data_root / split / sub
        return sorted(str(p.relative_to(top)) for p in top.rglob("*.png"))

    names = listed("A")
    assert names == listed("B")
    return [
        tuple(str(data_root / split / sub / n) for sub in ("A", "B", "label"))  # type: ignore[misc]
        for n in names
    ]


def torchange_files(dataset_dir: Path) -> list[tuple[str, str, str]]:
    a = sorted(glob.glob(os.path.join(dataset_dir, "A", "*.png")))
    return [(fp, fp.replace("A", "B"), fp.replace("A", "label")) for fp in a]


def _check_triples(triples: list[tuple[str, str, str]], n: int) -> None:
    assert len(triples) == n > 0
    for t1, t2, label in triples:
        assert len({Path(p).name for p in (t1, t2, label)}) == 1
        assert read_image(t1).shape[2] == 3 and read_image(t2).shape[2] == 3
        assert set(np.unique(read_image(label))) <= {0, 255}


def test_split_spec_parses_and_rejects_bad_specs() -> None:
    assert SPEC.to_dict() == {"train": 0.6, "val": 0.2, "test": 0.2}
    assert SplitSpec.from_dict(SPEC.to_dict()) == SPEC
    for bad, message in (
        ("train=0.5,val=0.2", "sum to 0.7, not 1"),
        ("train=abc", "NAME=SHARE"),
        ("train=0.5,train=0.5", "named twice"),
        ("../x=1", "NAME=SHARE"),
        ("train=0,val=1", "NAME=SHARE"),
    ):
        with pytest.raises(ConfigError, match=message):
            SplitSpec.parse(bad)


def test_an_item_keeps_its_split_when_items_are_added() -> None:
    names = [f"tile_{i}" for i in range(200)]
    small, big = Plan(names[:50], splits=SPEC, seed=3), Plan(names, splits=SPEC, seed=3)
    assert small.item_splits == big.item_splits[:50]
    shares = {s: big.item_splits.count(s) / 200 for s in SPLITS}
    assert abs(shares["train"] - 0.6) < 0.1 and abs(shares["val"] - 0.2) < 0.1
    assert Plan(names, splits=SPEC, seed=4).item_splits != big.item_splits  # seeded


def test_split_layout_loads_in_torchgeo_opencd_torchange_and_changen(split_out: Path) -> None:
    rows = read_rows(split_out)
    items: dict[str, set[str]] = {s: set() for s in SPLITS}
    for row in rows:
        items[row["source"]["split"]].add(row["source"]["item"])
    assert all(items.values()), items  # every split got items
    assert sum(map(len, items.values())) == 10 == len(set().union(*items.values()))  # no leak
    assert "A" not in str(split_out), "torchange's rule needs a path without another capital A"
    for split in SPLITS:
        n = 2 * len(items[split])  # per_image=2
        files = sorted(p.name for p in (split_out / split / "A").iterdir())
        assert all(f.startswith(f"{split}_") for f in files)
        assert (split_out / "list" / f"{split}.txt").read_text().split() == files
        _check_triples(torchgeo_files(split_out / split, split), n)
        _check_triples(opencd_files(split_out, split), n)
        _check_triples(torchange_files(split_out / split), n)
        reader = open_dataset(split_out, split=split)
        assert len(reader) == n and {s.meta["split"] for s in reader} == {split}
    assert len(open_dataset(split_out)) == 20


def test_split_layout_loads_in_real_torchgeo(split_out: Path) -> None:
    levircd = pytest.importorskip("torchgeo.datasets").LEVIRCD
    for split in SPLITS:
        dataset = levircd(root=str(split_out / split), split=split)
        assert len(dataset) == len(list((split_out / split / "A").iterdir()))
        assert set(dataset[0]["mask"].unique().tolist()) <= {0, 1}


def test_split_runs_are_deterministic_and_resume(
    world: Path, split_out: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    generate_dataset(config(world, splits=SPEC), again, RunOptions(workers=0, batch_size=3))
    assert dataset_files(again) == dataset_files(split_out)
    # a run killed after its first shards: last shard uncommitted, its files half written
    (again / "manifest" / "shard-00006.jsonl").unlink()
    (again / "manifest.json").unlink()
    (again / "list" / "train.txt").unlink()
    last = read_rows(split_out)[-1]["outputs"][0]
    (again / last["split"] / "B" / f"{last['name']}.png").write_bytes(b"\x89PNG half")
    result = generate_dataset(config(world, splits=SPEC), again, RunOptions(workers=0, resume=True))
    assert result.restored == 18 and result.stats.written == 2
    assert dataset_files(again) == dataset_files(split_out)
    with pytest.raises(ConfigError, match=r"plan\.splits"):
        other = SplitSpec.parse("train=0.5,val=0.5")
        generate_dataset(config(world, splits=other), again, RunOptions(workers=0, resume=True))


def test_card_and_config_record_the_splits(split_out: Path) -> None:
    saved = json.loads((split_out / "generation.json").read_text())["config"]
    plan = saved["plan"]
    assert plan["splits"] == SPEC.to_dict()
    manifest = json.loads((split_out / "manifest.json").read_text())
    for split in SPLITS:
        assert (
            plan["split_counts"][split]["samples"] == manifest["counts"]["splits"][split]["samples"]
        )
    card = (split_out / "README.md").read_text()
    assert "`--split train=0.6,val=0.2,test=0.2`, seed 0" in card
    row = f"| val | {plan['split_counts']['val']['items']} |"
    assert row in card and 'LEVIRCD(root="<this folder>/train", split="train")' in card


def test_second_layout_with_splits_writes_a_binary_label_folder(
    world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "second"
    generate_dataset(config(world, splits=SPEC, layout="second"), out, RunOptions(workers=0))
    for split in SPLITS:
        reader = open_dataset(out, split=split)
        assert reader.format == "second"
        for i in range(len(reader)):
            sample = reader[i]
            label = read_image(out / split / "label" / f"{sample.name}.png")[..., 0]
            np.testing.assert_array_equal(label, np.where(sample.change_mask == 1, 255, 0))
    assert (out / "list" / "test.txt").is_file()


def test_second_rgb_labels_read_back_as_the_index_labels(world: Path, tmp_path: Path) -> None:
    recoloured = OPENEARTHMAP.to_dict()
    for c in recoloured["classes"]:
        if tuple(c["color"]) == (255, 255, 255):
            c["color"] = [250, 250, 250]  # white is SECOND's "unchanged"
    tax = tmp_path / "oem.json"
    tax.write_text(json.dumps(recoloured))
    index, rgb = tmp_path / "index", tmp_path / "rgb"
    options = {"splits": SPEC, "taxonomy": str(tax), "limit": 4}
    generate_dataset(config(world, layout="second", **options), index, RunOptions(workers=0))
    generate_dataset(config(world, layout="second_rgb", **options), rgb, RunOptions(workers=0))
    first = next(rgb.glob("*/label1/*.png"))
    assert read_image(first).shape[2] == 3  # colour-coded, as the official release
    a, b = open_dataset(index), open_dataset(rgb)
    assert len(a) == len(b) == 8
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i].t1_mask, b[i].t1_mask)
        np.testing.assert_array_equal(a[i].change_mask, b[i].change_mask)


def test_second_rgb_writes_the_official_colours_and_refuses_ignore(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    l1, l2, change = second_labels(rng)
    image = rng.integers(0, 256, (*l1.shape, 3), dtype=np.uint8)
    sample = ChangeSample(image, image, change, l1, l2, None, SECOND_DING, "x")
    with SecondRGBWriter(tmp_path / "ok", SECOND_DING) as writer:
        writer.write(sample, "train")
    label = read_image(tmp_path / "ok" / "train" / "label1" / "x.png")
    np.testing.assert_array_equal(label, SECOND_DING.colorize(l1))
    assert tuple(label[l1 == 0][0]) == (255, 255, 255)  # unchanged is white
    ignored = l1.copy()
    ignored[change == 1] = SECOND_DING.ignore
    bad = ChangeSample(image, image, change, ignored, l2, None, SECOND_DING, "y")
    with pytest.raises(DataError, match="SECOND's RGB coding cannot store"):
        SecondRGBWriter(tmp_path / "bad", SECOND_DING).write(bad)
    with pytest.raises(ConfigError, match="share the colour"):
        SecondRGBWriter(tmp_path / "oem", OPENEARTHMAP)


def test_loveda_keeps_train_and_val(tmp_path: Path, rng: np.random.Generator) -> None:
    make_loveda_dataset(tmp_path, rng, layout="official")
    merged = LoveDAReader(tmp_path)
    assert [merged[i].meta["split"] for i in range(len(merged))] == ["train"] * 4 + ["val"] * 2
    assert LoveDAReader(tmp_path, split="val").names == ["4", "5"]
    assert sorted(open_dataset(tmp_path, split="train").names) == ["0", "1", "2", "3"]
    with pytest.raises(ConfigError, match="no LoveDA split 'test'; choose one of: train, val"):
        LoveDAReader(tmp_path, split="test")


def test_openearthmap_unknown_split_lists_the_lists(tmp_path: Path) -> None:
    region = tmp_path / "aachen"
    for sub in ("images", "labels"):
        (region / sub).mkdir(parents=True)
        (region / sub / "aachen_1.tif").write_bytes(b"")
    (tmp_path / "train.txt").write_text("aachen_1.tif\n")
    with pytest.raises(DataError, match=r"val\.txt: split list not found; choose one of: train"):
        OpenEarthMapReader(tmp_path, split="val")


def test_split_on_a_source_without_splits_is_one_line(world: Path) -> None:
    with pytest.raises(ConfigError, match="a folder dataset has no splits to choose from"):
        open_dataset(world, split="train")


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setattr(sys, "argv", ["changen", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr()


@pytest.mark.parametrize(
    ("split", "expect"),
    [
        ("train=0.7,val=0.2", "--split 'train=0.7,val=0.2': the shares sum to 0.9, not 1"),
        ("val", "a folder dataset has no splits to choose from; omit --split val"),
    ],
)
def test_cli_bad_split_is_one_line_and_writes_nothing(
    world: Path,
    tmp_path: Path,
    split: str,
    expect: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "out"
    args = ["generate", str(world), "--out", str(out), "--split", split, "--no-progress"]
    code, captured = run_cli(args, monkeypatch, capsys)
    assert code == 2 and expect in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_generate_split_prints_per_split_counts(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    args = ["generate", str(world), "--out", str(out), "--synthesizer", "noise_fill"]
    args += ["--split", "train=0.6,val=0.2,test=0.2", "--events", "remove", "--workers", "0"]
    monkeypatch.setattr(sys, "argv", ["changen", *args, "--no-progress", "--limit", "5"])
    main()
    assert "splits: " in capsys.readouterr().out
    assert sorted(p.name for p in (out / "list").iterdir())[0].endswith(".txt")
