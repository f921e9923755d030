"""``--json`` on every command that produces something (one JSON object on stdout, nothing
else), and the exit codes: 2 for usage errors, 3 for data errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from changen.cli.app import app, main
from changen.errors import DATA_EXIT, USAGE_EXIT, ConfigError, DataError, FormatError

DETECT = ("--batch-size", "2", "--crop", "64", "--steps", "1", "--no-progress")
TRAIN = ("--preset", "tiny", "--size", "32", "--batch-size", "2", "--workers", "0", "--steps", "1")
RUNTIME = ("--accelerator", "cpu", "--no-progress")


def run_cli(
    args: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[object, str, str]:
    """``changen ARGS`` through the console entry point: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["changen", *map(str, args)])
    code: object = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def summary(
    args: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """The JSON object ``changen ARGS --json`` prints: the only line on stdout."""
    code, out, err = run_cli([*args, "--json"], monkeypatch, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out
    parsed = json.loads(lines[0])
    assert isinstance(parsed, dict)
    return parsed


def _leaves(command: Any, path: str) -> list[tuple[str, Any]]:
    if hasattr(command, "commands"):
        return [leaf for name, sub in command.commands.items() for leaf in _leaves(sub, name)]
    return [(path, command)]


def test_every_command_that_produces_something_has_json() -> None:
    commands = dict(_leaves(get_command(app), ""))
    assert len(commands) >= 18
    lacking = [
        name for name, c in commands.items() if not any("--json" in p.opts for p in c.params)
    ]
    assert lacking == []


@pytest.fixture
def json_of(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., dict[str, Any]]:
    """``json_of(*ARGS)``: the summary ``changen ARGS --json`` prints."""
    return lambda *args: summary(list(args), monkeypatch, capsys)


@pytest.mark.usefixtures("fake_synthesizers")
def test_data_commands_print_one_json_object(
    tmp_path: Path, json_of: Callable[..., dict[str, Any]]
) -> None:
    world, pairs = tmp_path / "world", tmp_path / "pairs"
    made = json_of("data", "sample-world", "--out", world, "--n", "2", "--size", "32")
    assert made == {"out": str(world), "items": 2, "kind": "scene"}
    json_of("data", "sample-world", "--out", pairs, "--n", "2", "--size", "32", "--pairs")
    sim = json_of("simulate", world, "--out", tmp_path / "sim", "--no-progress")
    assert sim["items"] == 2 and set(sim["events"]) == {"create", "remove", "reclass"}
    conv = json_of("data", "convert", pairs, tmp_path / "tif", "--layout", "geotiff")
    assert conv["samples"] == 2 and conv["layout"] == "geotiff"
    gen = json_of(
        "generate", world, "--out", tmp_path / "gen", "--synthesizer", "noise_fill",
        "--events", "remove", "--fill", "surrounding", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert gen["samples"] == 2 and gen["pairs"] == 2 and gen["card"].endswith("README.md")
    page = json_of("gallery", tmp_path / "gen")
    assert page["url"].startswith("file://") and Path(page["page"]).is_file()


def test_detect_commands_print_one_json_object(
    worlds: dict[str, Path], tmp_path: Path, json_of: Callable[..., dict[str, Any]]
) -> None:
    run, tuned = tmp_path / "run", tmp_path / "tuned"
    pairs = worlds["pairs"]
    trained = json_of("detect", "train", pairs, "--out", run, "--model", "fc-siam-diff", *DETECT)
    assert trained["step"] == 1 and Path(trained["checkpoint"]).is_dir()
    again = json_of("detect", "finetune", pairs, "--init", run, "--out", tuned, *DETECT)
    assert again["step"] == 1 and again["val"] is None
    t1, t2 = pairs / "A" / "world_00000.png", pairs / "B" / "world_00000.png"
    out = tmp_path / "c.tif"
    predicted = json_of("detect", "predict", t1, t2, "--ckpt", run, "--out", out, "--no-progress")
    assert predicted["out"] == str(out) and 0 <= predicted["changed_fraction"] <= 1


@pytest.mark.slow
def test_training_commands_and_demo_print_one_json_object(
    worlds: dict[str, Path], tmp_path: Path, json_of: Callable[..., dict[str, Any]]
) -> None:
    for command in ("generator", "diffusion", "autoencoder"):
        out = tmp_path / command
        result = json_of("train", command, worlds["scenes"], "--out", out, *TRAIN, *RUNTIME)
        assert result == {
            "run": str(out),
            "checkpoint": str(out / "checkpoints" / "last"),
            "step": 1,
        }
    demo = json_of("demo", "--out", tmp_path / "demo", "--n", "2", "--size", "64", "--no-progress")
    assert demo["pairs"] == 2 and demo["gallery"].endswith("index.html")


def test_error_classes_carry_their_exit_codes() -> None:
    assert (USAGE_EXIT, DATA_EXIT) == (2, 3)
    assert ConfigError.exit_code == USAGE_EXIT
    assert DataError.exit_code == FormatError.exit_code == DATA_EXIT


@pytest.mark.parametrize(
    ("args", "status", "expect"),
    [
        (["generate", "{world}", "--out", "{tmp}/x", "--bogus"], 2, "No such option: --bogus"),
        (["data", "sample-world", "--out", "{tmp}/x", "--n", "0"], 2, "--n"),
        (["generate", "{world}", "--out", "{tmp}/x", "--resume", "--overwrite"], 2, "pick one"),
        (["data", "inspect", "{tmp}/missing"], 3, "no such file or folder"),
        (["data", "inspect", "{junk}"], 3, "could not recognise"),
    ],
)
def test_usage_errors_exit_2_and_data_errors_exit_3(
    args: list[str],
    status: int,
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = tmp_path / "world"
    world.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not a dataset")
    places = {"world": world, "tmp": tmp_path, "junk": junk}
    code, out, err = run_cli([a.format(**places) for a in args], monkeypatch, capsys)
    assert code == status and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], err
