"""ChangeAnywhere's N_max / N_min on the command line: ``--n-max`` / ``--n-min`` of ``generate``
and ``demo`` reach the diffusion synthesizer through ``SamplingConfig.from_two_phase``, are
recorded in ``generation.json``, conflict with ``--switch`` in one line, are refused by
synthesizers that do not sample in steps, and pass through ``benchmarks/synthesis_quality.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from changen.cli.options import sampling_options
from changen.errors import ConfigError
from changen.synthesis import load_synthesizer
from changen.synthesis.diffusion.synthesizer import DiffusionSynthesizer
from test_bench_synthesis_quality import bench
from test_diffusion_synthesizer import base_args, invoke, tiny_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "rsdit")


def two_phase(out: Path) -> dict[str, object]:
    saved = json.loads((out / "generation.json").read_text())["config"]
    sampling: dict[str, object] = saved["synthesizer"]["config"]["sampling"]
    return sampling


def test_n_min_and_n_max_reach_the_synthesizer(checkpoint: Path) -> None:
    synth = load_synthesizer(checkpoint, device="cpu", steps=10, n_max=8, n_min=2)
    assert isinstance(synth, DiffusionSynthesizer)
    assert synth.sampling.to_dict()["two_phase"] == {"N": 10, "N_max": 8, "N_min": 2}
    assert synth.sampling.switch == pytest.approx(6 / 8)
    only_max = DiffusionSynthesizer.from_checkpoint(checkpoint, steps=10, switch=0.5, n_max=4)
    assert only_max.sampling.to_dict()["two_phase"] == {"N": 10, "N_max": 4, "N_min": 2}


def test_generate_records_n_min_and_n_max(source: Path, tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "out"
    args = [*base_args(source, out, checkpoint), "--sampling-steps", "4", "--n-max", "3",
            "--n-min", "1"]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    sampling = two_phase(out)
    assert sampling["two_phase"] == {"N": 4, "N_max": 3, "N_min": 1}
    assert sampling["start"] == 3


def test_demo_takes_n_min(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "demo"
    result = invoke("demo", "--out", out, "--synthesizer", checkpoint, "--n", "1", "--size", "32",
                    "--sampling-steps", "2", "--n-min", "2", "--workers", "0",
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert two_phase(out / "dataset")["two_phase"] == {"N": 2, "N_max": 2, "N_min": 2}


def test_switch_and_n_min_together_is_one_error(
    source: Path, tmp_path: Path, checkpoint: Path
) -> None:
    with pytest.raises(ConfigError, match="--switch and --n-min"):
        sampling_options(5, None, 0.5, None, 1)
    args = [*base_args(source, tmp_path / "out", checkpoint), "--switch", "0.5", "--n-min", "1"]
    result = invoke(*args)
    assert isinstance(result.exception, ConfigError), result.output


@pytest.mark.parametrize(("flags", "match"), [(["--n-min", "9"], "N_min=9"),
                                              (["--n-max", "9"], "N_max=9")])  # fmt: skip
def test_out_of_range_values_are_config_errors(
    source: Path, tmp_path: Path, checkpoint: Path, flags: list[str], match: str
) -> None:
    args = [*base_args(source, tmp_path / "out", checkpoint), "--sampling-steps", "4", *flags]
    result = invoke(*args)
    assert isinstance(result.exception, ConfigError), result.output
    assert match in str(result.exception)


def test_synthesizers_without_steps_refuse_n_min(source: Path, tmp_path: Path) -> None:
    args = [*base_args(source, tmp_path / "out", Path("copy_paste")), "--n-min", "1"]
    result = invoke(*args)
    assert isinstance(result.exception, ConfigError), result.output
    assert "--n-min" in str(result.exception)


def test_the_benchmark_parses_per_checkpoint_overrides() -> None:
    module = bench()
    assert module.parse_synth("copy_paste") == ("copy_paste", "copy_paste", {})
    assert module.parse_synth("N_min 3=run/ckpt?n_min=3&steps=20") == (
        "N_min 3",
        "run/ckpt",
        {"n_min": 3, "steps": 20},
    )
    assert module.merged_sampling({"steps": 10, "switch": 0.8}, {"n_min": 2}) == {
        "steps": 10,
        "n_min": 2,
    }
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        module.parse_synth("a=b?eta=1")
