"""Shards and resume: the output-folder rules, torn folders, and a real process killed with
SIGKILL mid-run then resumed, compared file by file with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from changen.errors import ConfigError, DataError, OutputExistsError
from changen.generation import RunOptions, generate_dataset
from fixtures_generation import config, dataset_files, world_source

# Runs the real console entry point; registers the command first if app.py does not yet.
CLI = """
import sys
from changen.cli import app
if "generate" not in {c.name for c in app.app.registered_commands}:
    from changen.cli.generate import generate
    app.app.command("generate")(generate)
sys.argv[0] = "changen"
app.main()
"""


pytestmark = pytest.mark.usefixtures("fake_synthesizers")


def test_non_empty_output_needs_resume_or_overwrite(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"pass --resume .* --overwrite"):
        generate_dataset(config(source), out, RunOptions(workers=0))
    with pytest.raises(OutputExistsError, match="not a changen generate output"):
        generate_dataset(config(source), out, RunOptions(workers=0, resume=True))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_overwrite_replaces_a_previous_dataset(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate_dataset(config(source, steps=2), out, RunOptions(workers=0))
    assert (out / "series").is_dir()
    result = generate_dataset(
        config(source, per_image=1), out, RunOptions(workers=0, overwrite=True)
    )
    assert result.stats.written == 4
    assert not (out / "series").exists() and len(list((out / "A").iterdir())) == 4
    assert len(list((out / "manifest").iterdir())) == 2


def test_resume_refuses_another_config(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate_dataset(config(source), out, RunOptions(workers=0))
    with pytest.raises(ConfigError, match=r"\(seed differ from generation.json\)"):
        generate_dataset(config(source, seed=1), out, RunOptions(workers=0, resume=True))
    with pytest.raises(ConfigError, match=r"per_image, plan\.samples differ"):
        generate_dataset(config(source, per_image=1), out, RunOptions(workers=0, resume=True))


def test_resume_repairs_a_torn_folder(source: Path, tmp_path: Path) -> None:
    reference, out = tmp_path / "reference", tmp_path / "out"
    generate_dataset(config(source), reference, RunOptions(workers=0))
    generate_dataset(config(source), out, RunOptions(workers=0))
    # As a kill would leave it: last shard uncommitted, a sample of it half there, a temp file.
    (out / "manifest" / "shard-00002.jsonl").unlink()
    (out / "manifest.json").unlink()
    (out / "B" / "world_00003_v00.png").write_bytes(b"\x89PNG half")
    (out / "label" / "world_00003_v01.png").unlink()
    (out / "A" / ".world_00003_v01.x1y2.part.png").write_bytes(b"partial")
    result = generate_dataset(config(source), out, RunOptions(workers=0, resume=True))
    assert result.restored == 6 and result.stats.written == 2
    assert dataset_files(out) == dataset_files(reference)
    # resuming a finished run redoes nothing and changes nothing
    again = generate_dataset(config(source), out, RunOptions(workers=0, resume=True))
    assert again.restored == 8 and again.stats.written == 0
    assert dataset_files(out) == dataset_files(reference)


def test_corrupt_shard_manifest_is_reported(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate_dataset(config(source), out, RunOptions(workers=0))
    (out / "manifest" / "shard-00001.jsonl").write_text(
        '{"index": 3, "name": "x", "status": "ok", "outputs": []}\n'
    )
    with pytest.raises(DataError, match=r"shard-00001\.jsonl: rows do not cover shard 1"):
        generate_dataset(config(source), out, RunOptions(workers=0, resume=True))


def _generate(source: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [str(source), "--out", str(out), "--synthesizer", "copy_paste", "--per-image", "2"]
    args += ["--shard-size", "2", "--batch-size", "2", "--seed", "3", "--no-progress", *extra]
    return subprocess.Popen(
        [sys.executable, "-c", CLI, "generate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill takes its workers too
    )


def test_killed_run_resumes_to_the_uninterrupted_dataset(tmp_path: Path) -> None:
    source = world_source(tmp_path / "src", n=16, size=128)
    reference, out = tmp_path / "reference", tmp_path / "out"
    run = _generate(source, reference)
    killed = _generate(source, out)
    shards = out / "manifest"
    deadline = time.monotonic() + 120
    while len(list(shards.glob("shard-*.jsonl")) if shards.is_dir() else []) < 3:
        assert killed.poll() is None, killed.communicate()[0].decode()
        assert time.monotonic() < deadline, "the run committed no shard in 120 s"
        time.sleep(0.005)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    committed = len(list(shards.glob("shard-*.jsonl")))
    assert 3 <= committed < 16, "the run finished before it could be killed"
    assert not (out / "manifest.json").exists() and not (out / "README.md").exists()
    resumed = _generate(source, out, "--resume")
    log = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, log
    assert f"resumed: {2 * committed} samples were already committed" in log
    assert run.wait(timeout=300) == 0, run.communicate()[0].decode()
    assert dataset_files(out) == dataset_files(reference)
    assert json.loads((out / "manifest.json").read_text())["counts"]["samples"] == 32


def test_manifest_rows_missing_keys_are_a_one_line_error(tmp_path: Path) -> None:
    from changen.errors import DataError
    from changen.generation.shards import read_rows

    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest" / "shard-00000.jsonl").write_text('{"name": "x"}\n')
    with pytest.raises(DataError, match="row 1 lacks index, status, outputs"):
        read_rows(tmp_path)
