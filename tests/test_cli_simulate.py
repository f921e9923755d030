"""Tests of ``changen simulate`` on tiny generated folder datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from changen.cli.options import parse_range
from changen.cli.simulate import simulate
from changen.data.imageio import read_image, write_image
from changen.errors import ConfigError, OutputExistsError
from changen.events import ChangeProcess, decode_change

SIZE = 96
NAMES = ("a", "b")


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("simulate")(simulate)

    @app.callback()
    def _root() -> None:
        """Test app holding only the simulate command."""

    return app


def invoke(*args: str | Path):
    return CliRunner().invoke(make_app(), ["simulate", *map(str, args)])


def write_dataset(root: Path, seed: int = 0, classes: tuple[int, ...] = (1, 5, 7, 8)) -> Path:
    """Images + masks of separate rectangles (10..16 px sides) of ``classes`` on background."""
    rng = np.random.default_rng(seed)
    for name in NAMES:
        mask = np.zeros((SIZE, SIZE), np.uint8)
        for y in range(4, SIZE - 20, 24):
            for x in range(4, SIZE - 20, 24):
                h, w = rng.integers(10, 17, 2)
                mask[y : y + h, x : x + w] = rng.choice(classes)
        image = rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
        write_image(root / "images" / f"{name}.png", image)
        write_image(root / "masks" / f"{name}.png", mask)
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "src")


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_simulate_writes_consistent_outputs(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        dataset,
        "--out",
        out,
        "--steps",
        "2",
        "--taxonomy",
        "openearthmap",
        "--count",
        "2:3",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert "simulated 2 items × 2 steps" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["semantic_change_base"] == 9
    for name in NAMES:
        masks = [read_image(out / "masks" / f"{name}_t{k}.png")[..., 0] for k in range(3)]
        source = read_image(dataset / "masks" / f"{name}.png")[..., 0]
        assert (masks[0] == source).all()
        for k in (1, 2):
            pair = f"{name}_t{k - 1}_t{k}.png"
            change = read_image(out / "change" / pair)[..., 0]
            assert set(np.unique(change)) <= {0, 255}
            assert ((change == 255) == (masks[k - 1] != masks[k])).all()
            code = read_image(out / "semantic_change" / pair)[..., 0]
            assert code.dtype == np.uint16
            src, dst = decode_change(code, manifest["semantic_change_base"])
            changed = masks[k - 1] != masks[k]
            assert (src[changed] == masks[k - 1][changed]).all()
            assert (dst[changed] == masks[k][changed]).all()
            assert (code[~changed] == 0).all()
        preview = read_image(out / "preview" / f"{name}.png")
        assert preview.shape[2] == 3 and preview.shape[1] > 3 * 256
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert records and {r["item"] for r in records} == set(NAMES)
    assert {r["event"] for r in records} <= {"create", "remove", "reclass"}
    assert {r["step"] for r in records} <= {1, 2}
    process = ChangeProcess.from_dict(json.loads((out / "process.json").read_text()))
    assert process.steps == 2 and [e.kind for e in process.events] == [
        "create",
        "remove",
        "reclass",
    ]
    assert manifest["taxonomy"]["name"] == "openearthmap" and manifest["items"] == 2
    assert not list(out.rglob(".*.part*"))  # no temporary files left behind


def test_same_seed_gives_identical_files_and_another_seed_differs(
    dataset: Path, tmp_path: Path
) -> None:
    args = ("--steps", "2", "--taxonomy", "openearthmap", "--rotate", "any", "--flip")
    runs = {}
    for tag, seed in (("one", "7"), ("two", "7"), ("three", "8")):
        result = invoke(dataset, "--out", tmp_path / tag, "--seed", seed, *args)
        assert result.exit_code == 0, result.output
        runs[tag] = files_of(tmp_path / tag)
    assert runs["one"] == runs["two"]
    assert runs["one"]["events.jsonl"] != runs["three"]["events.jsonl"]


def test_config_file_reproduces_a_run(dataset: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert (
        invoke(
            dataset,
            "--out",
            first,
            "--steps",
            "2",
            "--taxonomy",
            "openearthmap",
            "--events",
            "remove,create",
            "--scale",
            "0.8:1.2",
        ).exit_code
        == 0
    )
    again = tmp_path / "again"
    result = invoke(
        dataset, "--out", again, "--events", first / "process.json", "--taxonomy", "openearthmap"
    )
    assert result.exit_code == 0, result.output
    assert files_of(first)["events.jsonl"] == files_of(again)["events.jsonl"]
    mixed = invoke(
        dataset, "--out", tmp_path / "x", "--events", first / "process.json", "--count", "3"
    )
    assert isinstance(mixed.exception, ConfigError) and "--count" in str(mixed.exception)


def test_non_empty_output_is_refused_unless_overwrite(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = invoke(dataset, "--out", out, "--taxonomy", "openearthmap")
    assert isinstance(result.exception, OutputExistsError)
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.iterdir())) == 1
    result = invoke(dataset, "--out", out, "--taxonomy", "openearthmap", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "events.jsonl").is_file()


def test_binary_dataset_defaults_to_create_and_remove(tmp_path: Path) -> None:
    src = write_dataset(tmp_path / "src", classes=(1,))
    result = invoke(src, "--out", tmp_path / "out", "--limit", "1", "--count", "3:3")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out" / "masks").iterdir()) == [
        "a_t0.png",
        "a_t1.png",
    ]
    events = json.loads((tmp_path / "out" / "process.json").read_text())["events"]
    assert [e["kind"] for e in events] == ["create", "remove"]
    refused = invoke(src, "--out", tmp_path / "o2", "--events", "reclass")
    assert isinstance(refused.exception, ConfigError)
    assert "--kernel" in str(refused.exception)


def test_kernel_file_enables_reclass_on_other_taxonomies(tmp_path: Path) -> None:
    src = write_dataset(tmp_path / "src", classes=(1, 2))
    kernel = tmp_path / "kernel.json"
    kernel.write_text(json.dumps({"1": {"2": 1.0}, "2": {"1": 1.0}}))
    result = invoke(
        src,
        "--out",
        tmp_path / "out",
        "--taxonomy",
        "xview2_damage",
        "--events",
        "reclass",
        "--kernel",
        kernel,
        "--count",
        "2:2",
    )
    assert result.exit_code == 0, result.output
    records = [
        json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    ]
    assert len(records) == 4
    assert all({r["class_before"], r["class_after"]} == {1, 2} for r in records)


def test_unlabeled_mode_runs_on_region_proposals(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        dataset,
        "--out",
        out,
        "--unlabeled",
        "felzenszwalb",
        "--limit",
        "1",
        "--taxonomy",
        "openearthmap",
    )
    assert result.exit_code == 0, result.output
    mask = read_image(out / "masks" / "a_t1.png")[..., 0]
    assert set(np.unique(mask)) <= {0, 1}
    contours = read_image(out / "contours" / "a_t1.png")[..., 0]
    assert set(np.unique(contours)) == {0, 255}
    assert (mask[contours == 255] == 1).all()  # contours lie on objects
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["taxonomy"]["name"] == "object"
    refused = invoke(
        dataset, "--out", tmp_path / "o2", "--unlabeled", "slic", "--events", "create,reclass"
    )
    assert isinstance(refused.exception, ConfigError) and "unlabeled" in str(refused.exception)


def test_unlabeled_mode_uses_sam_style_instance_maps(dataset: Path, tmp_path: Path) -> None:
    for name in NAMES:
        mask = read_image(dataset / "masks" / f"{name}.png")[..., 0]
        sam = np.zeros(mask.shape, np.uint16)
        sam[mask > 0] = 40_000 + mask[mask > 0].astype(np.uint16) * 7  # arbitrary ids
        write_image(dataset / "instances" / f"{name}.png", sam)
    out = tmp_path / "out"
    result = invoke(
        dataset,
        "--out",
        out,
        "--unlabeled",
        "instances",
        "--taxonomy",
        "openearthmap",
        "--count",
        "2:2",
        "--steps",
        "2",
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {r["event"] for r in records} == {"create", "remove"}
    assert {r["class_after"] for r in records if r["event"] == "create"} == {1}
    for name in NAMES:
        masks = [read_image(out / "masks" / f"{name}_t{k}.png")[..., 0] for k in range(3)]
        source = read_image(dataset / "masks" / f"{name}.png")[..., 0]
        assert (masks[0] == (source > 0)).all()
        assert all(set(np.unique(m)) <= {0, 1} for m in masks)
        assert (out / "contours" / f"{name}_t2.png").is_file()


def test_parse_range() -> None:
    assert parse_range("1:5", "--count", int) == (1, 5)
    assert parse_range("3", "--count", int) == (3, 3)
    assert parse_range("0.5:1.5", "--scale", float) == (0.5, 1.5)
    for bad in ("1-5", "a:b", "1:2:3", "", "1.5:2"):
        with pytest.raises(ConfigError, match="expected LO:HI"):
            parse_range(bad, "--count", int)
    with pytest.raises(ConfigError, match="LO <= HI"):
        parse_range("5:1", "--count", int)


def test_bad_flags_are_config_errors(dataset: Path, tmp_path: Path) -> None:
    result = invoke(dataset, "--out", tmp_path / "o", "--count", "1-5")
    assert isinstance(result.exception, ConfigError) and "--count '1-5'" in str(result.exception)
    result = invoke(dataset, "--out", tmp_path / "o", "--unlabeled", "sam")
    assert isinstance(result.exception, ConfigError)
    assert not (tmp_path / "o").exists()


@pytest.mark.real
def test_simulate_real_xview2_buildings(real_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        real_root / "xview2_joplin",
        "--out",
        out,
        "--limit",
        "1",
        "--steps",
        "2",
        "--count",
        "3:3",
        "--seed",
        "1",
    )
    assert result.exit_code == 0, result.output
    name = "joplin-tornado_00000000"
    masks = [read_image(out / "masks" / f"{name}_t{k}.png")[..., 0] for k in range(3)]
    assert all(set(np.unique(m)) <= {0, 1} for m in masks)
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {r["event"] for r in records} == {"create", "remove"}
    assert all(r["area"] >= 64 for r in records if r["event"] == "remove")  # created: scaled
    assert (out / "preview" / f"{name}.png").is_file()


@pytest.mark.real
def test_simulate_real_loveda_keeps_no_data(real_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        real_root / "loveda", "--out", out, "--limit", "1", "--steps", "2", "--fill", "surrounding"
    )
    assert result.exit_code == 0, result.output
    masks = [read_image(out / "masks" / f"0_t{k}.png")[..., 0] for k in range(3)]
    no_data = masks[0] == 0  # LoveDA's ignore id
    for k in (1, 2):
        assert ((masks[k] == 0) == no_data).all()
        change = read_image(out / "change" / f"0_t{k - 1}_t{k}.png")[..., 0]
        assert (change[no_data] == 0).all()
        assert ((change == 255) == (masks[k - 1] != masks[k])).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["taxonomy"]["name"] == "loveda"
    base = manifest["semantic_change_base"]
    assert base == 8  # ids 1..7, 0 is ignore
    code = read_image(out / "semantic_change" / "0_t0_t1.png")[..., 0]
    changed = masks[0] != masks[1]
    src, dst = decode_change(code, base)
    assert (src[changed] == masks[0][changed]).all() and (dst[changed] == masks[1][changed]).all()
    assert (code[no_data] == 65535).all()


def test_land_cover_creates_by_default_and_warns_when_told_not_to(tmp_path: Path) -> None:
    """The sample world has no background pixel: default placement still creates objects;
    --placement free (background only) creates none and says why."""
    from changen.data.world import write_sample_world

    world = write_sample_world(tmp_path / "world", 4, 0, size=96)
    made = invoke(world, "--out", tmp_path / "a", "--no-preview")
    assert made.exit_code == 0, made.output
    assert "0 create" not in made.output and "never happened" not in made.output
    free = invoke(world, "--out", tmp_path / "b", "--no-preview", "--placement", "free")
    assert free.exit_code == 0, free.output
    assert "0 create" in free.output and "create never happened" in free.output


def test_a_change_dataset_or_a_negative_seed_is_a_one_line_error(tmp_path: Path) -> None:
    from fixtures_change import build_folder_dataset

    build_folder_dataset(tmp_path / "cd", "levircd", np.random.default_rng(0))
    result = invoke(tmp_path / "cd", "--out", tmp_path / "out")
    assert "needs a single-temporal dataset" in str(result.exception)
    assert not (tmp_path / "out").exists()
    result = invoke(tmp_path / "cd", "--out", tmp_path / "out", "--seed", "-1")
    assert result.exit_code == 2 and "--seed" in result.output
