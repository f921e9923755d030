"""Every writer is transactional and locked (see docs/formats.md, "Output folders").

Each command that writes a folder (simulate, data sample-world, data convert, gallery, demo,
train generator, detect train / finetune), run through the console entry point, is tried with
a bad item in the middle (a corrupt file built here), a read-only parent, a full disk
(``ENOSPC`` from the function that writes) and a second writer holding the lock: each fails
with one line and exit status 2, and leaves no output, or the previous output as it was.
"""

from __future__ import annotations

import errno
import importlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from changen.cli.app import main
from changen.cli.detect import app as detect_app
from changen.data.lock import output_lock
from changen.data.staging import output_in_place, staged_output
from changen.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")

TUNE = ["--batch-size", "2", "--crop", "32", "--workers", "0", "--accelerator", "cpu"]
TUNE += ["--no-progress"]
DETECT = ["--model", "fc-siam-diff", *TUNE]
GAN = ["--preset", "tiny", "--size", "32", "--batch-size", "2", "--workers", "0", "--holdout"]
GAN += ["0", "--preview", "0", "--sample-every", "0", "--accelerator", "cpu", "--no-progress"]
DEMO = ["--n", "2", "--size", "32", "--workers", "0", "--no-progress"]
ROOT = os.geteuid() == 0

Args = Callable[[Path, Path], list[Any]]
"""The command line of a writer, from its input and its output folder."""

COMMANDS: dict[str, tuple[str, Args]] = {
    # name: (the worlds entry it reads, its command line)
    "simulate": ("scenes", lambda src, out: ["simulate", src, "--out", out, "--no-progress"]),
    "sample-world": ("scenes", lambda src, out: ["data", "sample-world", "--out", out, "--n", 2]),
    "convert": ("pairs", lambda src, out: ["data", "convert", src, out, "--layout", "second"]),
    "gallery": ("pairs", lambda src, out: ["gallery", src, "--out", out / "index.html"]),
    "demo": (
        "scenes",
        lambda src, out: ["demo", "--out", out, *DEMO, "--synthesizer", "copy_paste"],
    ),
    "train generator": (
        "scenes",
        lambda src, out: ["train", "generator", src, "--out", out, "--steps", 1, *GAN],
    ),
    "detect train": (
        "pairs",
        lambda src, out: ["detect", "train", src, "--out", out, "--steps", 1, *DETECT],
    ),
}


def run_cli(
    args: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[object, str]:
    """``changen ARGS`` through the console entry point: (exit status, stderr)."""
    monkeypatch.setattr(sys, "argv", ["changen", *map(str, args)])
    code: object = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def refused(
    args: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """The one ``error:`` line of a command that must fail with status 2 (usage) or 3 (data)."""
    code, err = run_cli(args, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code in (2, 3) and len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (lock files aside: they hold the last holder's pid)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".changen-lock")
    }


def leftovers(out: Path) -> list[str]:
    """Staging, old or trash folders left beside ``out`` (none when its folder is gone too)."""
    if not out.parent.exists():
        return []
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.changen-")
            and not p.name.endswith("-lock")]  # fmt: skip


def corrupt_copy(src: Path, dst: Path, relative: str) -> Path:
    """A copy of dataset ``src`` whose file ``relative`` is not an image any more."""
    shutil.copytree(src, dst)
    (dst / relative).write_bytes(b"not a png")
    return dst


@pytest.fixture(scope="module")
def detect_run(worlds: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-step detector run (an older output, and an --init)."""
    out = tmp_path_factory.mktemp("detect") / "run"
    args = ["train", str(worlds["pairs"]), "--out", str(out), "--steps", "1", *DETECT]
    result = CliRunner().invoke(detect_app, args)
    assert result.exit_code == 0, result.output
    return out


# -- (a) a bad item in the middle -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bad", "steps"),
    [
        ("simulate", "masks/world_00003.png", []),
        ("convert", "B/world_00004.png", []),
        ("train generator", "images/world_00003.png", ["--steps", 3]),  # all 6 items are read
        ("detect train", "B/world_00003.png", ["--steps", 4]),  # all 8 pairs are read
    ],
)
def test_a_bad_item_leaves_no_output(
    name: str,
    bad: str,
    steps: list[Any],
    worlds: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kind, args = COMMANDS[name]
    src = corrupt_copy(worlds[kind], tmp_path / "src", bad)
    out = tmp_path / "out"
    line = refused([*args(src, out), *steps], monkeypatch, capsys)  # the last --steps counts
    assert f"{src / bad}: not a readable image" in line
    assert not out.exists() and not leftovers(out)


@pytest.mark.parametrize(
    ("name", "bad"), [("simulate", "masks/world_00003.png"), ("convert", "B/world_00004.png")]
)
def test_overwrite_keeps_the_previous_output_until_the_new_one_commits(
    name: str,
    bad: str,
    worlds: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kind, args = COMMANDS[name]
    out = tmp_path / "out"
    code, err = run_cli(args(worlds[kind], out), monkeypatch, capsys)
    assert code == 0, err
    (out / "mine.txt").write_text("older output")
    before = snapshot(out)
    src = corrupt_copy(worlds[kind], tmp_path / "src", bad)
    assert "not a readable image" in refused([*args(src, out), "--overwrite"], monkeypatch, capsys)
    assert snapshot(out) == before and not leftovers(out)
    code, err = run_cli([*args(worlds[kind], out), "--overwrite"], monkeypatch, capsys)
    assert code == 0, err
    assert not (out / "mine.txt").exists() and (out / "manifest.json").is_file()


def test_a_bad_sample_keeps_the_previous_gallery(
    worlds: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "pairs"
    shutil.copytree(worlds["pairs"], src)
    code, err = run_cli(["gallery", src, "--thumb", 16], monkeypatch, capsys)
    assert code == 0, err
    before = snapshot(src / "gallery")
    (src / "B" / "world_00005.png").write_bytes(b"not a png")
    line = refused(["gallery", src, "--thumb", 16], monkeypatch, capsys)
    assert f"{src / 'B' / 'world_00005.png'}: not a readable image" in line
    assert snapshot(src / "gallery") == before and not leftovers(src / "gallery" / "thumbs")


def test_a_failed_demo_leaves_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    demo = ["demo", "--out", out, *DEMO]
    assert str(broken) in refused([*demo, "--synthesizer", broken], monkeypatch, capsys)
    assert not out.exists() and not leftovers(out)
    code, err = run_cli([*demo, "--synthesizer", "copy_paste"], monkeypatch, capsys)
    assert code == 0, err
    before = snapshot(out)
    refused([*demo, "--synthesizer", broken, "--overwrite"], monkeypatch, capsys)
    assert snapshot(out) == before and not leftovers(out)


def test_detect_overwrite_and_finetune_keep_what_was_there(
    detect_run: Path,
    worlds: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = corrupt_copy(worlds["pairs"], tmp_path / "src", "B/world_00003.png")
    run = tmp_path / "run"
    shutil.copytree(detect_run, run)
    before = snapshot(run)
    train = ["detect", "train", src, "--out", run, "--steps", 4, *DETECT, "--overwrite"]
    assert "not a readable image" in refused(train, monkeypatch, capsys)
    assert snapshot(run) == before and not leftovers(run)
    fine = tmp_path / "fine"
    finetune = ["detect", "finetune", "--init", detect_run, src, "--out", fine, "--steps", 4]
    assert "not a readable image" in refused([*finetune, *TUNE], monkeypatch, capsys)
    assert not fine.exists()
    inside = ["detect", "finetune", "--init", run, worlds["pairs"], "--out", run, "--overwrite"]
    assert "--init" in refused([*inside, *TUNE], monkeypatch, capsys)
    assert snapshot(run) == before


# -- (b) a read-only parent, (c) a full disk, (d) a second writer ---------------------------


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders")
@pytest.mark.parametrize("name", COMMANDS)
def test_a_read_only_parent_is_one_line(
    name: str,
    worlds: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kind, args = COMMANDS[name]
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        line = refused(args(worlds[kind], parent / "out"), monkeypatch, capsys)
    finally:
        parent.chmod(0o700)
    assert str(parent / "out") in line and "Permission denied" in line
    assert list(parent.iterdir()) == []


FULL_DISK = {
    # name: (the module attribute that writes, calls that succeed first)
    "simulate": ("changen.generation.simulate.write_image", 3),
    "sample-world": ("changen.data.writers.base.save_array", 2),
    "convert": ("changen.data.writers.base.save_array", 4),
    "gallery": ("changen.viz.gallery.write_image", 6),
    "demo": ("changen.data.writers.base.save_array", 8),  # the source fits, the dataset not
    "train generator": ("changen.engine.run.save_checkpoint", 0),
    "detect train": ("changen.engine.run.save_checkpoint", 0),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_a_full_disk_is_one_line_and_leaves_no_output(
    name: str,
    worlds: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kind, args = COMMANDS[name]
    target, calls = FULL_DISK[name]
    module, attribute = target.rsplit(".", 1)
    real = getattr(importlib.import_module(module), attribute)
    seen = {"n": 0}

    def full(*a: object, **k: object) -> object:
        """``real``, until ``calls`` calls have filled the disk."""
        seen["n"] += 1
        if seen["n"] > calls:
            raise OSError(errno.ENOSPC, "No space left on device", str(a[0]))
        return real(*a, **k)

    monkeypatch.setattr(target, full)
    out = tmp_path / "out"
    line = refused(args(worlds[kind], out), monkeypatch, capsys)
    assert "(No space left on device)" in line and "free disk space" in line
    written = out / "thumbs" if name == "gallery" else out
    assert not written.exists() and not leftovers(written)


@pytest.mark.parametrize("name", COMMANDS)
def test_a_second_writer_is_refused_with_the_holder_named(
    name: str,
    worlds: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kind, args = COMMANDS[name]
    out = tmp_path / "out"
    locked = out / "thumbs" if name == "gallery" else out
    with output_lock(locked):
        line = refused(args(worlds[kind], out), monkeypatch, capsys)
    assert f"{locked}: in use by pid {os.getpid()}" in line
    assert not locked.exists()


# -- the staging folders themselves ---------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_killed_swap_is_rolled_back_by_the_next_writer(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _tree(tmp_path / ".out.changen-old", {"a.txt": "old"})  # killed between the two renames
    _tree(out, {"b.txt": "new, uncommitted"})
    _tree(tmp_path / ".out.changen-staging", {"c.txt": "half"})
    _tree(tmp_path / ".out.changen-trash", {"d.txt": "committed away"})
    with pytest.raises(DataError, match="bad item"), staged_output(out, overwrite=True) as stage:
        assert snapshot(out) == {"a.txt": b"old"} and list(stage.iterdir()) == []
        (stage / "e.txt").write_text("next")
        raise DataError("bad item")
    assert snapshot(out) == {"a.txt": b"old"} and not leftovers(out)
    with staged_output(out, overwrite=True) as stage:
        (stage / "e.txt").write_text("next")
    assert snapshot(out) == {"e.txt": b"next"} and not leftovers(out)


def test_in_place_builds_keep_a_resumable_output(tmp_path: Path) -> None:
    out = _tree(tmp_path / "run", {"old.txt": "previous run"})

    def resumable(run: Path) -> bool:
        return (run / "checkpoint").is_file()

    for written, left in (
        ({"config.json": "{}"}, {"old.txt": b"previous run"}),  # no checkpoint: rolled back
        ({"checkpoint": "step 2"}, {"checkpoint": b"step 2"}),  # resumable: kept
    ):
        with pytest.raises(DataError), output_in_place(out, overwrite=True, keep=resumable) as run:
            _tree(run, written)
            raise DataError("bad item")
        assert snapshot(out) == left and not leftovers(out)
    fresh = tmp_path / "fresh"
    with pytest.raises(DataError), output_in_place(fresh) as run:
        _tree(run, {"config.json": "{}"})
        raise DataError("bad item")
    assert not fresh.exists() and not leftovers(fresh)


def test_an_output_behind_a_link_is_replaced_where_the_link_points(tmp_path: Path) -> None:
    target = _tree(tmp_path / "scratch" / "out", {"a.txt": "old"})
    link = tmp_path / "out"
    link.symlink_to(target)
    with staged_output(link, overwrite=True) as stage:
        assert stage.parent == target.parent
        (stage / "b.txt").write_text("new")
    assert link.is_symlink() and snapshot(target) == {"b.txt": b"new"}
    with pytest.raises(DataError), output_in_place(link, overwrite=True) as run:
        _tree(run, {"c.txt": "half"})
        raise DataError("bad item")
    assert link.is_symlink() and snapshot(target) == {"b.txt": b"new"} and not leftovers(target)


def test_files_get_the_permissions_of_the_umask(tmp_path: Path) -> None:
    """Atomic writes do not leave mkstemp's 0600 behind (issue #16: shared datasets)."""
    from changen.data.atomic import _UMASK, write_text_atomic

    write_text_atomic(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~_UMASK
