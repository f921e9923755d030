"""Files a user is handed never run code: malicious pickles given as ``--weights``,
``--encoder-weights`` or ``--official-weights`` are refused with one line, and their payload
(a pickle whose ``__reduce__`` writes a file) never runs. See docs/security.md."""

from __future__ import annotations

import pickle
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from changen.cli.app import main
from changen.data.imageio import write_image
from changen.data.world import write_sample_world
from changen.detectors import ChangeStar, load_official_changestar
from changen.errors import ConfigError
from changen.metrics.inception import read_weights
from changen.synthesis.gan.encoder import UNetEncoder


class WriteFile:
    """Unpickling this object writes ``target``: what a hostile weights file would do."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.target)!r}, 'w').write('pwned')",)


def payloads(folder: Path, target: Path) -> dict[str, Path]:
    """Hostile files of every shape: torch.save, a raw pickle, a TorchScript-like zip whose
    ``constants.pkl`` holds the payload (the audited attack), a pickle named .safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    evil = {"weight": torch.zeros(2), "hook": WriteFile(target)}
    files = {
        "torch_save": folder / "torch_save.pth",
        "raw_pickle": folder / "raw_pickle.pt",
        "torchscript_zip": folder / "torchscript.pt",
        "fake_safetensors": folder / "fake.safetensors",
    }
    torch.save(evil, files["torch_save"])
    files["raw_pickle"].write_bytes(pickle.dumps(evil))
    with zipfile.ZipFile(files["torchscript_zip"], "w") as archive:
        archive.writestr("model/constants.pkl", pickle.dumps(WriteFile(target)))
        archive.writestr("model/data.pkl", pickle.dumps(WriteFile(target)))
        archive.writestr("model/version", "3\n")
    files["fake_safetensors"].write_bytes(pickle.dumps(evil))
    return files


KINDS = ("torch_save", "raw_pickle", "torchscript_zip", "fake_safetensors")


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """``changen ARGS`` through the console entry point: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["changen", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def assert_refused(code: object, err: str, path: Path, target: Path) -> None:
    assert not target.exists(), "the pickle's payload ran"
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert str(path) in lines[0] and "Traceback" not in err


# --- library ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_library_loaders_refuse_malicious_pickles(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "pwned.txt"
    path = payloads(tmp_path / "files", target)[kind]
    with pytest.raises(ConfigError, match="Inception") as inception_error:
        read_weights(path)
    with pytest.raises(ConfigError, match="encoder weights") as encoder_error:
        UNetEncoder((8, 8, 8, 8), (8, 8, 8, 8, 8, 8), weights=path)
    with pytest.raises(ConfigError, match="official weights") as official_error:
        load_official_changestar(path, ChangeStar("resnet18", symmetric=False))
    for error in (inception_error, encoder_error, official_error):
        message = str(error.value)
        assert str(path) in message and "\n" not in message
    assert not target.exists()


def test_torchscript_is_refused_before_it_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real TorchScript file as --weights is refused without torch.jit.load."""
    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit is deprecated, not gone
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.jit.load must not see a user's file")

    monkeypatch.setattr(torch.jit, "load", forbidden)
    with pytest.raises(ConfigError, match="TorchScript archive, which can run code"):
        read_weights(path)


# --- CLI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_eval_fidelity_refuses_malicious_weights(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch_fidelity")
    target = tmp_path / "pwned.txt"
    path = payloads(tmp_path / "files", target)[kind]
    rng = np.random.default_rng(0)
    for side in ("real", "fake"):
        for i in range(2):
            write_image(tmp_path / side / f"{i}.png", rng.integers(0, 256, (32, 32, 3), np.uint8))
    code, err = run_cli(
        ["eval", "fidelity", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
         "--weights", str(path), "--json"],
        monkeypatch,
        capsys,
    )  # fmt: skip
    assert_refused(code, err, path, target)


@pytest.mark.parametrize("kind", ["torch_save", "raw_pickle"])
def test_detect_predict_refuses_malicious_official_weights(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pwned.txt"
    path = payloads(tmp_path / "files", target)[kind]
    image = np.zeros((32, 32, 3), np.uint8)
    write_image(tmp_path / "t1.png", image)
    write_image(tmp_path / "t2.png", image)
    code, err = run_cli(
        ["detect", "predict", str(tmp_path / "t1.png"), str(tmp_path / "t2.png"),
         "--out", str(tmp_path / "change.png"), "--official-weights", str(path), "--no-progress"],
        monkeypatch,
        capsys,
    )  # fmt: skip
    assert_refused(code, err, path, target)
    assert not (tmp_path / "change.png").exists()


@pytest.mark.parametrize("kind", ["torch_save", "raw_pickle"])
def test_train_generator_refuses_malicious_encoder_weights(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pwned.txt"
    path = payloads(tmp_path / "files", target)[kind]
    world = write_sample_world(tmp_path / "world", 2, 0, size=64)
    code, err = run_cli(
        ["train", "generator", str(world), "--out", str(tmp_path / "run"), "--preset", "tiny",
         "--size", "64", "--steps", "1", "--batch-size", "1", "--workers", "0",
         "--encoder-weights", str(path), "--no-progress"],
        monkeypatch,
        capsys,
    )  # fmt: skip
    assert_refused(code, err, path, target)
