"""``changen bench transfer``: a tiny experiment end to end, its table, resume after SIGKILL
and config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from changen.errors import ConfigError
from changen.protocol import load_config, run_protocol

CLI = "import sys; from changen.cli.app import main; sys.argv[0] = 'changen'; main()"
TINY = """
sources: sample-world
change: sample-world
world: {size: 64, n_source: 4, n_train: 4, n_test: 2}
events: {events: "create,remove", count: [1, 2]}
synthesizers: [copy_paste]
detectors: [{model: fc_siam_diff}]
pretrain: {steps: 2, batch_size: 2, crop: 32}
finetune: {steps: 2, batch_size: 2, crop: 32, fractions: [0.5, 1.0]}
seeds: [0]
threads: 1
"""


def _config(tmp_path: Path, text: str = TINY, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _results(out: Path) -> dict[str, float]:
    """mtime of every finished unit's result file."""
    return {str(p.relative_to(out)): p.stat().st_mtime for p in (out / "results").rglob("*.json")}


def test_tiny_experiment_writes_the_table_of_its_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_protocol(load_config(_config(tmp_path)), out)
    assert sorted(_results(out)) == sorted(
        f"results/fc_siam_diff/{arm}/seed0/{phase}.json"
        for arm, phases in {
            "copy_paste": ("pretrain", "zero_shot", "finetune-0.5", "finetune-1"),
            "scratch": ("finetune-0.5", "finetune-1"),
        }.items()
        for phase in phases
    )
    unit = json.loads((out / "results/fc_siam_diff/copy_paste/seed0/zero_shot.json").read_text())
    assert report["mean_std"]["fc_siam_diff"]["copy_paste"]["zero_shot"]["f1"] == {
        "mean": unit["f1"],
        "std": 0.0,
    }
    table = (out / "results.md").read_text().splitlines()
    assert table[0] == "| detector | arm | zero-shot F1 | F1 @ 50 % | F1 @ 100 % |"
    assert table[2].startswith(f"| fc_siam_diff | copy_paste | {unit['f1']:.3f} ± 0.000 |")
    assert table[3].startswith("| fc_siam_diff | scratch | – |")
    assert json.loads((out / "results.json").read_text())["all_changed_baseline"]["recall"] == 1.0
    assert (out / "f1_vs_fraction.png").read_bytes()[:4] == b"\x89PNG"


def test_rerun_with_more_seeds_redoes_no_finished_unit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_protocol(load_config(_config(tmp_path)), out)
    before = _results(out)
    more = _config(tmp_path, TINY.replace("seeds: [0]", "seeds: [0, 1]"), "more.yaml")
    report = run_protocol(load_config(more), out)
    after = _results(out)
    assert {k: after[k] for k in before} == before
    assert len(after) == 2 * len(before)
    assert set(report["per_seed"]["fc_siam_diff"]["scratch"]) == {0, 1}
    other = _config(
        tmp_path,
        TINY.replace(
            "steps: 2, batch_size: 2, crop: 32}\nfinetune",
            "steps: 3, batch_size: 2, crop: 32}\nfinetune",
        ),
        "other.yaml",
    )
    with pytest.raises(ConfigError, match="ran other pretrain settings"):
        run_protocol(load_config(other), out)


def _bench(config: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "bench",
            "transfer",
            str(config),
            "--out",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_killed_experiment_resumes_without_redoing_finished_units(tmp_path: Path) -> None:
    config, out = _config(tmp_path), tmp_path / "out"
    killed = _bench(config, out)
    deadline = time.monotonic() + 300
    while not (out / "results").is_dir() or not any((out / "results").rglob("*.json")):
        assert killed.poll() is None, killed.communicate()[0].decode()
        assert time.monotonic() < deadline, "no unit finished in 300 s"
        time.sleep(0.01)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    done = _results(out)
    assert 1 <= len(done) < 6 and not (out / "results.md").exists()
    resumed = _bench(config, out)
    log = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, log
    assert "generating" not in log
    after = _results(out)
    assert {k: after[k] for k in done} == done and len(after) == 6
    assert "| fc_siam_diff | scratch |" in log


def test_imagenet_arm_starts_from_the_backbone_file(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "r18.safetensors"
    save_file(timm.create_model("resnet18").state_dict(), str(weights))
    text = TINY.replace(
        "{model: fc_siam_diff}",
        "{model: bit, backbone: resnet18, backbone_weights: r18.safetensors}",
    )
    text = text.replace("synthesizers: [copy_paste]", "synthesizers: []").replace(
        "[0.5, 1.0]", "[1.0]"
    )
    out = tmp_path / "out"
    report = run_protocol(load_config(_config(tmp_path, text + "baselines: [imagenet]\n")), out)
    assert set(report["mean_std"]["bit-resnet18"]) == {"imagenet"}
    run = json.loads((out / "runs/bit-resnet18/imagenet/seed0/finetune-1/config.json").read_text())
    assert run["backbone_weights"]["file"] == str(weights)


def test_segmentation_arm_fine_tunes_from_segmentation_pretraining(tmp_path: Path) -> None:
    text = TINY.replace("{model: fc_siam_diff}", "{model: changestar_1x96}")
    text = text.replace("synthesizers: [copy_paste]", "synthesizers: []").replace(
        "[0.5, 1.0]", "[1.0]"
    )
    out = tmp_path / "out"
    config = load_config(_config(tmp_path, text + "baselines: [segmentation]\n"))
    report = run_protocol(config, out)
    assert set(report["mean_std"]["changestar_1x96"]) == {"segmentation"}
    arm = out / "runs/changestar_1x96/segmentation/seed0"
    pre = json.loads((arm / "pretrain/config.json").read_text())
    assert pre["train"]["mode"] == "segmentation" and pre["train"]["semantic"] is True
    tuned = json.loads((arm / "finetune-1/config.json").read_text())
    assert tuned["init"] == str(arm / "pretrain/checkpoints/last")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TINY + "sedes: [1]\n", r"unknown keys \['sedes'\]"),
        (TINY.replace("sources: sample-world\n", ""), "missing 'sources'"),
        (TINY.replace("{size: 64,", "{sise: 64,"), r"world: unknown keys \['sise'\]"),
        (TINY + "baselines: [nope]\n", r"unknown baselines \['nope'\]"),
        (TINY + "baselines: [imagenet]\n", "imagenet baseline needs backbone_weights"),
        (TINY + "baselines: [segmentation]\n", "fc_siam_diff lacks; use it with changestar"),
        (TINY.replace("[0.5, 1.0]", "[0.5, 2.0]"), "fraction 2.0 must lie in"),
        ("sources: [\n", "not valid YAML/JSON"),
        (
            TINY.replace("{steps: 2, batch_size: 2, crop: 32}", "{steps: 2, recipe: adam}"),
            "unknown recipe 'adam'",
        ),
        (
            TINY.replace('{events: "create,remove",', "{events: changeanywhere, scale: [1, 2],"),
            "changeanywhere fixes --scale",
        ),
        (TINY.replace("change: sample-world", "change: {test_fraction: 0.5}"), "needs path"),
        (
            TINY.replace("count: [1, 2]}", "count: [1, 2], allow_overlap: true}"),
            r"events: unknown keys \['allow_overlap'\]",
        ),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config(_config(tmp_path, text))
    assert "\n" not in str(err.value) and "tiny.yaml" in str(err.value)


def test_events_follow_the_source_taxonomy_as_in_generate(worlds: dict[str, Path]) -> None:
    """On land cover (the sample world) created objects land in homogeneous regions, as
    `changen generate` places them: with `free` placement they would never fire (no
    background pixels), and Copy-Paste and Inpainting would make the same removal-only pairs."""
    from collections import Counter

    from changen.generation import GenerationConfig, RunOptions, generate_dataset
    from changen.generation.shards import read_rows
    from changen.protocol.config import change_process
    from changen.taxonomies import get_taxonomy

    process = change_process(
        {"events": "create,remove", "count": [1, 3]}, get_taxonomy("openearthmap")
    )
    out = {}
    for synth in ("copy_paste", "inpaint"):
        config = GenerationConfig(
            source=str(worlds["scenes"]), synthesizer=synth, process=process, seed=0
        )
        out[synth] = worlds["scenes"].parent / f"events-{synth}"
        generate_dataset(config, out[synth], RunOptions(workers=0, overwrite=True))
    events = Counter(e["event"] for row in read_rows(out["copy_paste"]) for e in row["events"])
    assert events["create"] > 0 and events["remove"] > 0
    pairs = [
        (a.read_bytes(), (out["inpaint"] / "B" / a.name).read_bytes())
        for a in sorted((out["copy_paste"] / "B").iterdir())
    ]
    assert any(a != b for a, b in pairs)
