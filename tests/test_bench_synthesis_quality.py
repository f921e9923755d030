"""``benchmarks/synthesis_quality.py``: sampling options reach diffusion checkpoints only, and
``--out`` is required (no stray result folder in the working directory)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from fixtures_scripts import ROOT, load_script
from test_diffusion_synthesizer import tiny_checkpoint


def bench() -> ModuleType:
    return load_script("benchmarks/synthesis_quality.py")


def test_sampling_options_go_to_diffusion_checkpoints_only(tmp_path: Path) -> None:
    module = bench()
    sampling = {"steps": 7, "switch": 0.5}
    diffusion = tiny_checkpoint(tmp_path / "rsdit")
    assert module.synth_options(str(diffusion), sampling) == sampling
    assert module.synth_options("copy_paste", sampling) == {}
    gan = ROOT / "src" / "changen" / "assets" / "demo_gan"
    assert module.synth_options(str(gan), sampling) == {}


def test_out_is_required(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys, "argv", ["synthesis_quality.py", "--source", "x", "--synth", "a"])
    with pytest.raises(SystemExit) as exit_info:
        bench().main()
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err
