"""The bad-input corpus (issue #11): the bad inputs a careless user could hand every command.

Each :class:`Case` builds one bad input in its own folder, from the session's good inputs
(:func:`fixtures_bad_inputs.build_base`), and runs ``changen ARGS`` in-process through the
console entry point, in that folder. It must exit with status 2 and print exactly one line on
stderr (warnings count), no traceback, holding ``expect`` (the file it names and the fix), and
leave ``left``: by default the case folder byte for byte as the command found it (an output
that did not exist must not exist, resumable state must not change; writer locks aside) and
the base untouched.

Adding a case is one entry in :data:`CASES`. A command whose failure may leave something by
design (the resumable state of a transactional writer, issue #11 item 4) gives its case its
own ``left`` check. A case that fails today is marked with the bug it shows (``xfail``, strict:
it turns red once the bug is fixed, so that the mark goes too).
"""

from __future__ import annotations

import functools
import hashlib
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main

import fixtures_bad_inputs as b
from changen.cli.app import main
from changen.data.lock import output_lock
from fixtures_bad_inputs import EVIL, Base, at, cli, then
from test_gallery import ALLOWED_TAGS, FILE_SAFE, PageParser, hostile_dataset

Snapshot = dict[str, str]
LOCK_SUFFIX = ".changen-lock"


def snapshot(root: Path, content: bool = True) -> Snapshot:
    """Every path under ``root`` (writer locks aside) → a digest of its bytes (``content``) or
    its size and mtime, ``"dir"`` for folders."""
    found: Snapshot = {}
    for path in sorted(root.rglob("*")):
        if path.name.endswith(LOCK_SUFFIX):
            continue
        key = str(path.relative_to(root))
        if path.is_dir():
            found[key] = "dir"
        elif content:
            found[key] = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        else:
            stat = path.stat()
            found[key] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return found


def untouched(before: Snapshot, after: Snapshot) -> None:
    """Nothing created, changed or deleted."""
    created = sorted(set(after) - set(before))
    deleted = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (created or deleted or changed), f"{created=} {deleted=} {changed=}"


@dataclass(frozen=True)
class Case:
    """One bad input: ``build`` writes it into the case folder and returns the command line;
    ``expect`` is a substring of the one error line (with the placeholders of
    :mod:`fixtures_bad_inputs`); ``left`` checks the case folder's snapshots before and after
    the command; ``busy`` names an output (in the case folder) whose writer lock another run
    holds meanwhile; ``xfail`` says which bug makes the case fail today."""

    id: str
    build: b.Builder
    expect: str
    left: Callable[[Snapshot, Snapshot], None] = untouched
    busy: str | None = None
    xfail: str | None = None


QUIET = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
"""The warnings Python hides by default; any other would reach a user's stderr."""


def run_cli(args: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[object, str]:
    """``changen ARGS`` through the console entry point: (exit status, stderr), with the
    warnings it raised printed as a real process would print them."""
    sys.argv = ["changen", *args]
    code: object = 0
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        for category in QUIET:
            warnings.simplefilter("ignore", category)
        try:
            main()
        except SystemExit as e:
            code = e.code
    printed = [warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in shown]
    return code, "".join(printed) + capfd.readouterr().err


@contextmanager
def held(out: Path | None) -> Iterator[None]:
    """Hold ``out``'s writer lock for the block, as a run writing there would."""
    with ExitStack() as stack:
        if out is not None:
            stack.enter_context(output_lock(out))
        yield


# -- command lines ------------------------------------------------------------------------------

FIDELITY = "eval fidelity --real {pairs}/A --fake {pairs}/B --json"
PREDICT = (
    "detect predict {pairs}/A/world_00000.png {pairs}/B/world_00000.png "
    "--out {tmp}/change.png --no-progress"
)
PREDICT_TMP = (
    "detect predict {tmp}/t1.png {tmp}/t2.png --ckpt {detector} --out {tmp}/change.png "
    "--no-progress"
)
SIM = "simulate {scenes} --out {tmp}/out --no-progress"
SIM_TMP = "simulate {tmp}/scenes --out {tmp}/out --no-progress"
GENERATE = "generate {scenes} --out {tmp}/out " + b.GEN
GENERATE_TMP = "generate {tmp}/scenes --out {tmp}/out " + b.GEN
RESUME = "generate {scenes} --out {tmp}/gen --shard-size 2 --resume " + b.GEN
TRAIN_DET = "detect train {pairs} --out {tmp}/out " + b.DETECT_RUN
TRAIN_DET_TMP = "detect train {tmp}/pairs --out {tmp}/out " + b.DETECT_RUN
RESUME_DET = "detect train {pairs} --out {tmp}/run --resume " + b.DETECT_RUN
FINETUNE = "detect finetune --init {tmp}/ckpt {pairs} --out {tmp}/out " + b.FINETUNE
TRAIN_GAN = "train generator {scenes} --out {tmp}/out " + b.GAN_RUN
TRAIN_GAN_TMP = "train generator {tmp}/scenes --out {tmp}/out " + b.GAN_RUN
RESUME_GAN = "train generator --out {tmp}/run --resume --no-progress"
EVAL_DET = "detect eval {pairs} --ckpt {detector} --no-progress"
EVAL_TMP = "detect eval {tmp}/pairs --ckpt {detector} --no-progress"
EVAL_CKPT = "detect eval {pairs} --ckpt {tmp}/ckpt --no-progress"
GALLERY_TMP = "gallery {tmp}/pairs --out {tmp}/page/index.html"
WORLD = "data sample-world --out {tmp}/out"
DEMO = "demo --out {tmp}/out --workers 0 --no-progress"
SHARD = "manifest/shard-00000.jsonl"

# -- the bugs that make cases fail today ---------------------------------------------------------

GREY_PAIR = (
    "data/readers/change_folders.py takes a pair whose dates differ in bands (1-band B/, RGB "
    "A/) without complaint: detect eval scores grey against colour (exit 0); detect predict "
    "refuses such a pair in one line"
)
GAN_CONFIG_FILE = (
    "cli/train.py hands the --gan-config dict to GanConfig.from_dict without naming the file: "
    "its errors (unknown keys, wrong types) say 'GanConfig…' but not which file to fix"
)

CASES: list[Case] = [
    # 1. code execution from files a user is handed (docs/security.md) -----------------------
    Case(
        "eval-fidelity-weights-torch_save",
        then(b.hostile_files, FIDELITY + " --weights " + EVIL["torch_save"]),
        "Inception weights {tmp}/evil/torch_save.pth: not a readable weights file, or refused",
    ),
    Case(
        "eval-fidelity-weights-raw_pickle",
        then(b.hostile_files, FIDELITY + " --weights " + EVIL["raw_pickle"]),
        "Inception weights {tmp}/evil/raw_pickle.pt: not a readable weights file, or refused",
    ),
    Case(
        "eval-fidelity-weights-torchscript_zip",
        then(b.hostile_files, FIDELITY + " --weights " + EVIL["torchscript_zip"]),
        "{tmp}/evil/torchscript.pt: refused: a TorchScript archive, which can run code",
    ),
    Case(
        "eval-fidelity-weights-fake_safetensors",
        then(b.hostile_files, FIDELITY + " --weights " + EVIL["fake_safetensors"]),
        "Inception weights {tmp}/evil/fake.safetensors: not a readable weights file",
    ),
    Case(
        "detect-predict-official-weights-torch_save",
        then(b.hostile_files, PREDICT + " --official-weights " + EVIL["torch_save"]),
        "official weights {tmp}/evil/torch_save.pth: not a readable weights file, or refused",
    ),
    Case(
        "detect-predict-official-weights-raw_pickle",
        then(b.hostile_files, PREDICT + " --official-weights " + EVIL["raw_pickle"]),
        "official weights {tmp}/evil/raw_pickle.pt: not a readable weights file, or refused",
    ),
    Case(
        "detect-predict-official-weights-torchscript_zip",
        then(b.hostile_files, PREDICT + " --official-weights " + EVIL["torchscript_zip"]),
        "official weights {tmp}/evil/torchscript.pt: not a readable weights file, or refused",
    ),
    Case(
        "detect-predict-official-weights-fake_safetensors",
        then(b.hostile_files, PREDICT + " --official-weights " + EVIL["fake_safetensors"]),
        "official weights {tmp}/evil/fake.safetensors: not a readable weights file",
    ),
    Case(
        "detect-eval-official-weights-torch_save",
        then(
            b.hostile_files,
            "detect eval {pairs} --no-progress --official-weights " + EVIL["torch_save"],
        ),
        "official weights {tmp}/evil/torch_save.pth: not a readable weights file, or refused",
    ),
    Case(
        "train-generator-encoder-weights-torch_save",
        then(b.hostile_files, TRAIN_GAN + " --encoder-weights " + EVIL["torch_save"]),
        "encoder weights {tmp}/evil/torch_save.pth: not a readable weights file, or refused",
    ),
    Case(
        "train-generator-encoder-weights-raw_pickle",
        then(b.hostile_files, TRAIN_GAN + " --encoder-weights " + EVIL["raw_pickle"]),
        "encoder weights {tmp}/evil/raw_pickle.pt: not a readable weights file, or refused",
    ),
    Case(
        "train-generator-encoder-weights-torchscript_zip",
        then(b.hostile_files, TRAIN_GAN + " --encoder-weights " + EVIL["torchscript_zip"]),
        "encoder weights {tmp}/evil/torchscript.pt: not a readable weights file, or refused",
    ),
    Case(
        "train-generator-encoder-weights-fake_safetensors",
        then(b.hostile_files, TRAIN_GAN + " --encoder-weights " + EVIL["fake_safetensors"]),
        "encoder weights {tmp}/evil/fake.safetensors: not a readable weights file",
    ),
    Case(
        "detect-train-resume-hostile-state",
        then(
            b.copy_of("detector", "run", b.each_checkpoint(b.hostile("state.pt", "torch_save"))),
            RESUME_DET,
        ),
        "{tmp}/run/checkpoints/last/state.pt: refused or unreadable training state",
    ),
    Case(
        "train-generator-resume-hostile-state",
        then(
            b.copy_of("gan", "run", b.each_checkpoint(b.hostile("state.pt", "torch_save"))),
            RESUME_GAN,
        ),
        "{tmp}/run/checkpoints/last/state.pt: refused or unreadable training state",
    ),
    Case(
        "detect-finetune-init-hostile-weights",
        then(b.ckpt_of("detector", b.hostile("model.safetensors")), FINETUNE),
        "{tmp}/ckpt/model.safetensors: not a readable safetensors file",
    ),
    Case(
        "detect-eval-ckpt-hostile-weights",
        then(b.ckpt_of("detector", b.hostile("model.safetensors")), EVAL_CKPT),
        "{tmp}/ckpt/model.safetensors: not a readable safetensors file",
    ),
    Case(
        "detect-predict-ckpt-hostile-weights",
        then(b.ckpt_of("detector", b.hostile("model.safetensors")), PREDICT + " --ckpt {tmp}/ckpt"),
        "{tmp}/ckpt/model.safetensors: not a readable safetensors file",
    ),
    Case(
        "generate-gan-hostile-weights",
        then(
            b.ckpt_of("gan", b.hostile("generator_ema.safetensors")),
            GENERATE + " --synthesizer {tmp}/ckpt",
        ),
        "{tmp}/ckpt/generator_ema.safetensors: not a readable safetensors file",
    ),
    # 2. script injection: test_gallery_escapes_hostile_names below ---------------------------
    # 3. wrong labels -------------------------------------------------------------------------
    Case(
        "inspect-change-labels-1-2",
        then(
            b.copy_of("pairs", "pairs", at("label", b.pngs(b.values_1_2))),
            "data inspect {tmp}/pairs",
        ),
        "{tmp}/pairs/label/world_00000.png: change label holds values 1, 2, expected 0/1/255; "
        "say what they mean with --label-values",
    ),
    Case(
        "detect-train-change-labels-1-2",
        then(b.copy_of("pairs", "pairs", at("label", b.pngs(b.values_1_2))), TRAIN_DET_TMP),
        "{tmp}/pairs/label/world_00000.png: change label holds values 1, 2",
    ),
    Case(
        "detect-eval-change-labels-1-2",
        then(b.copy_of("pairs", "pairs", at("label", b.pngs(b.values_1_2))), EVAL_TMP),
        "{tmp}/pairs/label/world_00000.png: change label holds values 1, 2",
    ),
    Case(
        "convert-change-labels-1-2",
        then(
            b.copy_of("pairs", "pairs", at("label", b.pngs(b.values_1_2))),
            "data convert {tmp}/pairs {tmp}/out --layout second",
        ),
        "{tmp}/pairs/label/world_00000.png: change label holds values 1, 2",
    ),
    Case(
        "gallery-change-labels-1-2",
        then(b.copy_of("pairs", "pairs", at("label", b.pngs(b.values_1_2))), GALLERY_TMP),
        "{tmp}/pairs/label/world_00000.png: change label holds values 1, 2",
    ),
    Case(
        "fidelity-changed-regions-labels-1-2",
        then(
            b.copy_of("pairs", "pairs", at("label", b.pngs(b.values_1_2))),
            "eval fidelity --real {tmp}/pairs --fake {tmp}/pairs --regions changed --json",
        ),
        "{tmp}/pairs/label/world_00000.png: change label holds values 1, 2",
    ),
    Case(
        "inspect-change-labels-7",
        then(
            b.copy_of("pairs", "pairs", at("label", b.pngs(b.values_0_7))),
            "data inspect {tmp}/pairs",
        ),
        "{tmp}/pairs/label/world_00000.png: change label holds values 0, 7, expected 0/1/255",
    ),
    Case(
        "detect-train-change-labels-7",
        then(b.copy_of("pairs", "pairs", at("label", b.pngs(b.values_0_7))), TRAIN_DET_TMP),
        "{tmp}/pairs/label/world_00000.png: change label holds values 0, 7",
    ),
    Case(
        "detect-eval-change-labels-7",
        then(b.copy_of("pairs", "pairs", at("label", b.pngs(b.values_0_7))), EVAL_TMP),
        "{tmp}/pairs/label/world_00000.png: change label holds values 0, 7",
    ),
    Case(
        "inspect-label-values-malformed",
        cli("data inspect {pairs} --label-values 1-2"),
        "--label-values '1-2': expected UNCHANGED:CHANGED, e.g. 1:2",
    ),
    Case(
        "inspect-label-values-on-scenes",
        cli("data inspect {scenes} --label-values 1:2"),
        "{scenes}: --label-values and --binary-threshold apply to binary change folders",
    ),
    Case(
        "inspect-mask-class-42",
        then(
            b.copy_of("scenes", "scenes", at("masks", b.pngs(b.class_42))),
            "data inspect {tmp}/scenes",
        ),
        "{tmp}/scenes/masks/world_00000.png: mask ids [42] are not in taxonomy 'openearthmap'",
    ),
    Case(
        "simulate-mask-class-42",
        then(b.copy_of("scenes", "scenes", at("masks", b.pngs(b.class_42))), SIM_TMP),
        "{tmp}/scenes/masks/world_00000.png: mask ids [42] are not in taxonomy 'openearthmap'",
    ),
    Case(
        "generate-mask-class-42",
        then(b.copy_of("scenes", "scenes", at("masks", b.pngs(b.class_42))), GENERATE_TMP),
        "{tmp}/scenes/masks/world_00000.png: mask ids [42] are not in taxonomy 'openearthmap'",
    ),
    Case(  # training holds item 0 out: whichever mask it reads first is named
        "train-generator-mask-class-42",
        then(b.copy_of("scenes", "scenes", at("masks", b.pngs(b.class_42))), TRAIN_GAN_TMP),
        "{tmp}/scenes/masks/world_0000",
    ),
    Case(
        "detect-train-star-mask-class-42",
        then(
            b.copy_of("scenes", "scenes", at("masks", b.pngs(b.class_42))),
            "detect train {tmp}/scenes --mode star --out {tmp}/out " + b.DETECT_RUN,
        ),
        "{tmp}/scenes/masks/world_0000",
    ),
    Case(
        "detect-train-pair-mask-class-42",
        then(
            b.copy_of("pairs", "pairs", at("B_mask", b.pngs(b.class_42, first=True))), TRAIN_DET_TMP
        ),
        "{tmp}/pairs/B_mask/world_00000.png: mask ids [42] are not in taxonomy 'openearthmap'",
    ),
    Case(
        "inspect-taxonomy-too-small",
        cli("data inspect {scenes} --taxonomy binary_building"),
        "{scenes}/masks/world_00000.png: mask ids [2, 5] are not in taxonomy 'binary_building'",
    ),
    Case(
        "inspect-xview2-polygons-far-outside",
        then(b.xview2_outside, "data inspect {tmp}/xv"),
        "{tmp}/xv: every label was skipped, so every mask is empty; e.g. {tmp}/xv/labels/",
    ),
    Case(
        "simulate-xview2-polygons-far-outside",
        then(b.xview2_outside, "simulate {tmp}/xv --out {tmp}/out --no-progress"),
        "{tmp}/xv: every label was skipped",
        xfail="simulate runs on an xView2 folder whose every polygon lies outside its image "
        "(a SkippedLabelsWarning, then exit 0 and empty masks) where data inspect refuses it: "
        "generation/simulate.py or the xview2 reader should refuse it too (issue #11 item 3)",
    ),
    Case(
        "inspect-geojson-null-feature",
        then(b.geojson_feature(None), "data inspect {tmp}/gv"),
        "{tmp}/gv: every label was skipped, so every mask is empty; e.g. {tmp}/gv/tile.geojson",
    ),
    Case(
        "inspect-geojson-point-feature",
        then(b.geojson_feature("Point"), "data inspect {tmp}/gv"),
        "{tmp}/gv: every label was skipped, so every mask is empty; e.g. {tmp}/gv/tile.geojson",
    ),
    # 4. transactional writers: their cases come with that work (issue #11 item 4) -------------
    # 5. one writer per --out -----------------------------------------------------------------
    Case("generate-out-busy", cli(GENERATE), "{tmp}/out: in use by pid", busy="out"),
    Case("simulate-out-busy", cli(SIM), "{tmp}/out: in use by pid", busy="out"),
    Case(
        "generate-resume-busy",
        then(b.copy_of("generated", "gen"), RESUME),
        "{tmp}/gen: in use by pid",
        busy="gen",
    ),
    # 6. no tracebacks: the list of issue #11 -----------------------------------------------------
    Case("simulate-negative-seed", cli(SIM + " --seed -1"), "Invalid value for '--seed'"),
    Case("generate-negative-seed", cli(GENERATE + " --seed -1"), "Invalid value for '--seed'"),
    Case("demo-negative-seed", cli(DEMO + " --seed -1"), "Invalid value for '--seed'"),
    Case("detect-train-negative-seed", cli(TRAIN_DET + " --seed -1"), "value for '--seed'"),
    Case("train-generator-negative-seed", cli(TRAIN_GAN + " --seed -1"), "value for '--seed'"),
    Case("sample-world-negative-seed", cli(WORLD + " --seed -1"), "Invalid value for '--seed'"),
    Case("simulate-limit-minus-1", cli(SIM + " --limit -1"), "Invalid value for '--limit'"),
    Case("generate-limit-minus-1", cli(GENERATE + " --limit -1"), "Invalid value for '--limit'"),
    Case(
        "inspect-limit-minus-1",
        cli("data inspect {scenes} --limit -1"),
        "Invalid value for '--limit'",
    ),
    Case(
        "gallery-limit-minus-1",
        cli("gallery {generated} --limit -1"),
        "Invalid value for '--limit': Input should be greater than or equal to 1",
    ),
    Case("fidelity-max-images-minus-1", cli(FIDELITY + " --max-images -1"), "'--max-images'"),
    Case(
        "detect-eval-truncated-safetensors",
        then(b.ckpt_of("detector", at("model.safetensors", b.damage("truncate"))), EVAL_CKPT),
        "{tmp}/ckpt/model.safetensors: not a readable safetensors file",
    ),
    Case(
        "detect-predict-truncated-safetensors",
        then(
            b.ckpt_of("detector", at("model.safetensors", b.damage("truncate"))),
            PREDICT + " --ckpt {tmp}/ckpt",
        ),
        "{tmp}/ckpt/model.safetensors: not a readable safetensors file",
    ),
    Case(
        "detect-finetune-zero-byte-safetensors",
        then(b.ckpt_of("detector", at("model.safetensors", b.damage("zero"))), FINETUNE),
        "{tmp}/ckpt/model.safetensors: not a readable safetensors file",
    ),
    Case(
        "generate-gan-truncated-safetensors",
        then(
            b.ckpt_of("gan", at("generator_ema.safetensors", b.damage("truncate"))),
            GENERATE + " --synthesizer {tmp}/ckpt",
        ),
        "{tmp}/ckpt/generator_ema.safetensors: not a readable safetensors file",
    ),
    Case(
        "train-generator-resume-truncated-safetensors",
        then(
            b.copy_of(
                "gan", "run", b.each_checkpoint(at("generator.safetensors", b.damage("truncate")))
            ),
            RESUME_GAN,
        ),
        "{tmp}/run/checkpoints/last/generator.safetensors: not a readable safetensors file",
    ),
    Case(
        "detect-train-resume-truncated-state",
        then(
            b.copy_of("detector", "run", b.each_checkpoint(at("state.pt", b.damage("truncate")))),
            RESUME_DET,
        ),
        "{tmp}/run/checkpoints/last/state.pt: refused or unreadable training state",
    ),
    Case(
        "detect-eval-mismatched-weights",
        then(b.ckpt_of("detector", b.foreign("model")), EVAL_CKPT),
        "{tmp}/ckpt/model.safetensors: weights do not fit the model its config.json describes",
    ),
    Case(
        "generate-gan-mismatched-weights",
        then(b.ckpt_of("gan", b.foreign("generator_ema")), GENERATE + " --synthesizer {tmp}/ckpt"),
        "{tmp}/ckpt/generator_ema.safetensors: weights do not fit the model",
    ),
    Case(
        "detect-finetune-mismatched-weights",
        then(b.ckpt_of("detector", b.foreign("model")), FINETUNE),
        "{tmp}/ckpt: its weights (model 'fc_siam_diff') do not fit the model being trained",
    ),
    Case(
        "detect-train-resume-step-abc",
        then(b.copy_of("detector", "run", b.only_step_abc), RESUME_DET),
        "{tmp}/run: no checkpoints/step-<N> to resume from; drop --resume",
    ),
    Case(
        "train-generator-resume-step-abc",
        then(b.copy_of("gan", "run", b.only_step_abc), RESUME_GAN),
        "{tmp}/run: no checkpoint to resume from (no checkpoints/last)",
    ),
    Case(
        "detect-eval-ckpt-run-step-abc",
        then(
            b.copy_of("detector", "run", b.only_step_abc),
            "detect eval {pairs} --ckpt {tmp}/run --no-progress",
        ),
        "{tmp}/run: no checkpoint",
    ),
    Case(
        "generate-synthesizer-run-step-abc",
        then(b.copy_of("gan", "run", b.only_step_abc), GENERATE + " --synthesizer {tmp}/run"),
        "{tmp}/run: no checkpoint",
    ),
    Case(
        "generate-resume-truncated-generation-json",
        then(b.copy_of("generated", "gen", at("generation.json", b.damage("truncate"))), RESUME),
        "{tmp}/gen/generation.json: unreadable run config",
    ),
    Case(
        "gallery-truncated-generation-json",
        then(
            b.copy_of("generated", "gen", at("generation.json", b.damage("truncate"))),
            "gallery {tmp}/gen",
        ),
        "{tmp}/gen/generation.json: unreadable run config",
    ),
    Case(
        "gallery-generation-json-without-taxonomy",
        then(
            b.copy_of(
                "generated",
                "gen",
                at("generation.json", b.json_edit(lambda d: d["config"].pop("taxonomy"))),
            ),
            "gallery {tmp}/gen",
        ),
        "{tmp}/gen/generation.json: no readable taxonomy",
    ),
    Case(
        "gallery-manifest-rows-missing-keys",
        then(
            b.copy_of("generated", "gen", at(SHARD, b.rows_edit(b.without("outputs", "status")))),
            "gallery {tmp}/gen",
        ),
        "{tmp}/gen/manifest/shard-00000.jsonl: row 1 lacks status, outputs",
    ),
    Case(
        "gallery-manifest-rows-not-objects",
        then(
            b.copy_of("generated", "gen", at(SHARD, b.rows_edit(lambda rows: [[1]] * len(rows)))),
            "gallery {tmp}/gen",
        ),
        "{tmp}/gen/manifest/shard-00000.jsonl: row 1 lacks index, name, status, outputs",
    ),
    Case(
        "gallery-manifest-shard-truncated",
        then(b.copy_of("generated", "gen", at(SHARD, b.damage("truncate"))), "gallery {tmp}/gen"),
        "{tmp}/gen/manifest/shard-00000.jsonl: unreadable shard manifest",
    ),
    Case(
        "generate-resume-shard-truncated",
        then(b.copy_of("generated", "gen", at(SHARD, b.damage("truncate"))), RESUME),
        "{tmp}/gen/manifest/shard-00000.jsonl: unreadable shard manifest",
    ),
    Case(
        "generate-resume-stray-shard",
        then(b.copy_of("generated", "gen", b.stray_shard), RESUME),
        "{tmp}/gen/manifest/shard-00042.jsonl: shard 42 is outside this run's plan",
    ),
    Case(
        "simulate-change-dataset",
        cli("simulate {pairs} --out {tmp}/out --no-progress"),
        "{pairs}: simulate needs a single-temporal dataset",
    ),
    Case(
        "demo-unknown-synthesizer",
        cli(DEMO + " --synthesizer nope"),
        "unknown synthesizer 'nope'; choose one of copy_paste, inpaint",
    ),
    Case(
        "demo-synthesizer-missing-folder",
        cli(DEMO + " --synthesizer {tmp}/gan"),
        "unknown synthesizer '{tmp}/gan'",
    ),
    # 6. no tracebacks: missing files and folders ------------------------------------------------
    Case(
        "simulate-missing-source",
        cli("simulate {tmp}/nope --out {tmp}/out"),
        "{tmp}/nope: no such file or folder",
    ),
    Case(
        "generate-missing-source",
        cli("generate {tmp}/nope --out {tmp}/out"),
        "{tmp}/nope: no such file or folder",
    ),
    Case("inspect-missing", cli("data inspect {tmp}/nope"), "{tmp}/nope: no such file or folder"),
    Case(
        "convert-missing-source",
        cli("data convert {tmp}/nope {tmp}/out --layout levircd"),
        "{tmp}/nope: no such file or folder",
    ),
    Case("gallery-missing", cli("gallery {tmp}/nope"), "{tmp}/nope: no such file or folder"),
    Case(
        "detect-train-missing-data",
        cli("detect train {tmp}/nope --out {tmp}/out " + b.DETECT_RUN),
        "{tmp}/nope: no such file or folder",
    ),
    Case(
        "train-generator-missing-data",
        cli("train generator {tmp}/nope --out {tmp}/out " + b.GAN_RUN),
        "{tmp}/nope: no such file or folder",
    ),
    Case(
        "detect-eval-missing-ckpt",
        cli("detect eval {pairs} --ckpt {tmp}/nope"),
        "{tmp}/nope: neither a checkpoint (config.json + *.safetensors) nor a run folder",
    ),
    Case(
        "detect-finetune-missing-init",
        cli(FINETUNE.replace("{tmp}/ckpt", "{tmp}/nope")),
        "{tmp}/nope: neither a checkpoint (config.json + *.safetensors) nor a run folder",
    ),
    Case(
        "detect-predict-missing-t1",
        cli(PREDICT_TMP),
        "{tmp}/t1.png: file not found",
    ),
    Case(
        "fidelity-missing-real",
        cli("eval fidelity --real {tmp}/nope --fake {pairs}/B --json"),
        "{tmp}/nope: no such folder; pass a folder of images or a change dataset",
    ),
    Case(
        "fidelity-missing-weights",
        cli(FIDELITY + " --weights {tmp}/w.pth"),
        "{tmp}/w.pth: Inception weights file not found",
    ),
    Case(
        "fidelity-missing-change-masks",
        cli(FIDELITY + " --change-masks {tmp}/nope"),
        "{tmp}/nope: no such folder of change masks",
    ),
    Case(
        "generate-missing-kernel",
        cli(GENERATE + " --kernel {tmp}/k.json"),
        "{tmp}/k.json: not a transition kernel (FileNotFoundError",
    ),
    Case(
        "train-generator-missing-gan-config",
        cli(TRAIN_GAN + " --gan-config {tmp}/g.json"),
        "{tmp}/g.json: cannot read the GAN config JSON",
    ),
    Case(
        "generate-missing-sources-file",
        cli("generate --sources {tmp}/s.json --out {tmp}/out " + b.GEN),
        "{tmp}/s.json: cannot read the sources file",
    ),
    Case(
        "train-generator-missing-encoder-weights",
        cli(TRAIN_GAN + " --encoder-weights {tmp}/r18.pth"),
        "encoder weights {tmp}/r18.pth not found",
    ),
    Case(
        "detect-predict-missing-official-weights",
        cli(PREDICT + " --official-weights {tmp}/cs.pth"),
        "official weights {tmp}/cs.pth not found",
    ),
    # ... empty folders
    Case(
        "simulate-empty-folder",
        then(b.mkdir("empty"), "simulate {tmp}/empty --out {tmp}/out"),
        "{tmp}/empty: the folder is empty; point at a dataset folder",
    ),
    Case(
        "generate-empty-folder",
        then(b.mkdir("empty"), "generate {tmp}/empty --out {tmp}/out"),
        "{tmp}/empty: the folder is empty; point at a dataset folder",
    ),
    Case(
        "gallery-empty-folder",
        then(b.mkdir("empty"), "gallery {tmp}/empty"),
        "{tmp}/empty: the folder is empty; point at a dataset folder",
    ),
    Case(
        "detect-train-empty-folder",
        then(b.mkdir("empty"), "detect train {tmp}/empty --out {tmp}/out " + b.DETECT_RUN),
        "{tmp}/empty: the folder is empty; point at a dataset folder",
    ),
    Case(
        "fidelity-empty-real",
        then(b.mkdir("empty"), "eval fidelity --real {tmp}/empty --fake {pairs}/B --json"),
        "{tmp}/empty: no images (png/jpg/jpeg/tif/tiff/bmp) directly inside",
    ),
    Case(
        "detect-eval-ckpt-empty-folder",
        then(b.mkdir("ckpt"), EVAL_CKPT),
        "{tmp}/ckpt: neither a checkpoint (config.json + *.safetensors) nor a run folder",
    ),
    Case(
        "generate-synthesizer-empty-folder",
        then(b.mkdir("ckpt"), GENERATE + " --synthesizer {tmp}/ckpt"),
        "{tmp}/ckpt: neither a checkpoint (config.json + *.safetensors) nor a run folder",
    ),
    Case(
        "detect-train-resume-empty-folder",
        then(b.mkdir("out"), TRAIN_DET + " --resume"),
        "{tmp}/out: no checkpoints/step-<N> to resume from; drop --resume",
    ),
    Case(
        "train-generator-resume-empty-folder",
        then(b.mkdir("run"), RESUME_GAN),
        "{tmp}/run: no checkpoint to resume from (no checkpoints/last); run without --resume",
    ),
    Case(
        "train-generator-resume-missing-folder",
        cli(RESUME_GAN),
        "{tmp}/run: no checkpoint to resume from (no checkpoints/last); run without --resume",
    ),
    Case("sample-world-n-0", cli(WORLD + " --n 0"), "Invalid value for '--n'"),
    # ... a file where a folder is expected, and the other way round
    Case(
        "simulate-source-is-png",
        cli("simulate {scenes}/images/world_00000.png --out {tmp}/out"),
        "{scenes}/images/world_00000.png: could not recognise the dataset layout; pass --format",
    ),
    Case(
        "simulate-out-is-file",
        then(b.write("out", "x"), SIM),
        "{tmp}/out: exists and is not a folder; choose another output folder",
    ),
    Case(
        "generate-out-is-file",
        then(b.write("out", "x"), GENERATE),
        "{tmp}/out: exists and is not a folder; choose another output folder",
    ),
    Case(
        "detect-train-out-is-file",
        then(b.write("out", "x"), TRAIN_DET),
        "{tmp}/out: exists and is not a folder; choose another output folder",
    ),
    Case(
        "train-generator-out-is-file",
        then(b.write("out", "x"), TRAIN_GAN),
        "{tmp}/out: exists and is not a folder; choose another output folder",
    ),
    Case(
        "convert-out-is-file",
        then(b.write("out", "x"), "data convert {pairs} {tmp}/out --layout second"),
        "{tmp}/out: exists and is not a folder; choose another output folder",
    ),
    Case(
        "sample-world-out-is-file",
        then(b.write("out", "x"), WORLD),
        "{tmp}/out: exists and is not a folder; choose another output folder",
    ),
    Case(
        "demo-out-is-file",
        then(b.write("out", "x"), DEMO),
        "{tmp}/out: exists and is not a folder; choose another output folder",
    ),
    Case(
        "generate-out-under-a-file",
        then(b.write("f", "x"), "generate {scenes} --out {tmp}/f/out " + b.GEN),
        "{tmp}/f/out: cannot write the dataset (Not a directory); choose a writable output",
    ),
    Case(
        "gallery-dataset-is-file",
        then(b.write("d.txt", "x"), "gallery {tmp}/d.txt"),
        "{tmp}/d.txt: could not recognise the dataset layout",
    ),
    Case(
        "fidelity-real-is-file",
        then(b.write("r.png", "x"), "eval fidelity --real {tmp}/r.png --fake {pairs}/B --json"),
        "{tmp}/r.png: no such folder",
    ),
    Case(
        "detect-eval-ckpt-is-file",
        then(b.write("c.pt", "x"), "detect eval {pairs} --ckpt {tmp}/c.pt"),
        "{tmp}/c.pt: neither a checkpoint",
    ),
    Case(
        "detect-predict-t1-is-folder",
        cli(
            "detect predict {pairs}/A {pairs}/B/world_00000.png --ckpt {detector} "
            "--out {tmp}/change.png"
        ),
        "{pairs}/A: file not found",
    ),
    Case(
        "detect-predict-out-is-folder",
        then(b.mkdir("change.png"), PREDICT + " --ckpt {detector}"),
        "{tmp}/change.png exists; choose another --out",
    ),
    Case(
        "inspect-junk-folder",
        then(b.write("junk/notes.txt", "x"), "data inspect {tmp}/junk"),
        "{tmp}/junk: could not recognise the dataset layout; pass --format",
    ),
    Case(
        "error-line-keeps-markup-like-paths",
        cli("simulate {tmp}/[bold]nope[/bold] --out {tmp}/out"),
        "{tmp}/[bold]nope[/bold]: no such file or folder",
    ),
    # ... images: sizes, bands, damaged files
    Case(
        "detect-predict-size-mismatch",
        then(b.image_pair(b.grown), PREDICT_TMP),
        "{tmp}/t2.png: 48×48 px but {tmp}/t1.png is 32×32; the dates must be co-registered",
    ),
    Case(
        "detect-predict-grey-t2",
        then(b.image_pair(b.grey), PREDICT_TMP),
        "{tmp}/t2.png: 1 colour band(s) but {tmp}/t1.png has 3; both dates must be RGB",
    ),
    Case(
        "detect-predict-corrupt-png",
        then(b.image_pair(None, at("t2.png", b.damage("garbage"))), PREDICT_TMP),
        "{tmp}/t2.png: not a readable image (corrupt, truncated or not an image)",
    ),
    Case(
        "detect-predict-zero-byte-png",
        then(b.image_pair(None, at("t2.png", b.damage("zero"))), PREDICT_TMP),
        "{tmp}/t2.png: not a readable image (corrupt, truncated or not an image)",
    ),
    Case(
        "detect-predict-truncated-png",
        then(b.image_pair(None, at("t2.png", b.damage("truncate"))), PREDICT_TMP),
        "{tmp}/t2.png: not a readable image (corrupt, truncated or not an image)",
    ),
    Case(
        "detect-predict-corrupt-tif",
        then(
            b.image_pair(None, b.renamed("t2.png", "t2.tif"), at("t2.tif", b.damage("garbage"))),
            PREDICT_TMP.replace("t2.png", "t2.tif"),
        ),
        "{tmp}/t2.tif: not a readable raster",
    ),
    Case(
        "detect-eval-pair-size-mismatch",
        then(b.copy_of("pairs", "pairs", at("B", b.pngs(b.grown, first=True))), EVAL_TMP),
        "{tmp}/pairs/B/world_00000.png: t2 image is 48×48 (w×h) but its image",
    ),
    Case(
        "detect-train-pair-size-mismatch",
        then(b.copy_of("pairs", "pairs", at("B", b.pngs(b.grown, first=True))), TRAIN_DET_TMP),
        "{tmp}/pairs/B/world_00000.png: t2 image is 48×48 (w×h) but its image",
    ),
    Case(
        "inspect-pair-size-mismatch",
        then(
            b.copy_of("pairs", "pairs", at("B", b.pngs(b.grown, first=True))),
            "data inspect {tmp}/pairs",
        ),
        "{tmp}/pairs/B/world_00000.png: t2 image is 48×48 (w×h) but its image",
    ),
    Case(
        "detect-eval-pair-grey-t2",
        then(b.copy_of("pairs", "pairs", at("B", b.pngs(b.grey, first=True))), EVAL_TMP),
        "{tmp}/pairs/B/world_00000.png",
        xfail=GREY_PAIR,
    ),
    Case(
        "simulate-mask-size-mismatch",
        then(b.copy_of("scenes", "scenes", at("masks", b.pngs(b.grown, first=True))), SIM_TMP),
        "{tmp}/scenes/masks/world_00000.png: mask is 48×48 (w×h) but its image",
    ),
    Case(
        "simulate-zero-byte-mask",
        then(b.copy_of("scenes", "scenes", at("masks", b.damage("zero", first=True))), SIM_TMP),
        "{tmp}/scenes/masks/world_00000.png: not a readable image",
    ),
    Case(
        "simulate-corrupt-image",
        then(b.copy_of("scenes", "scenes", at("images", b.damage("garbage", first=True))), SIM_TMP),
        "{tmp}/scenes/images/world_00000.png: not a readable image",
    ),
    Case(
        "generate-truncated-image",
        then(
            b.copy_of("scenes", "scenes", at("images", b.damage("truncate", first=True))),
            GENERATE_TMP,
        ),
        "{tmp}/scenes/images/world_00000.png: not a readable image",
    ),
    Case(  # every mask: training holds item 0 out
        "train-generator-corrupt-masks",
        then(b.copy_of("scenes", "scenes", at("masks", b.damage("garbage"))), TRAIN_GAN_TMP),
        "{tmp}/scenes/masks/world_0000",
    ),
    Case(
        "inspect-zero-byte-label",
        then(
            b.copy_of("pairs", "pairs", at("label", b.damage("zero", first=True))),
            "data inspect {tmp}/pairs",
        ),
        "{tmp}/pairs/label/world_00000.png: not a readable image",
    ),
    Case(
        "detect-train-corrupt-t1",
        then(b.copy_of("pairs", "pairs", at("A", b.damage("garbage", first=True))), TRAIN_DET_TMP),
        "{tmp}/pairs/A/world_00000.png: not a readable image",
    ),
    Case(
        "convert-truncated-t2",
        then(
            b.copy_of("pairs", "pairs", at("B", b.damage("truncate", first=True))),
            "data convert {tmp}/pairs {tmp}/out --layout second",
        ),
        "{tmp}/pairs/B/world_00000.png: not a readable image",
    ),
    Case(
        "gallery-corrupt-t1",
        then(b.copy_of("pairs", "pairs", at("A", b.damage("garbage", first=True))), GALLERY_TMP),
        "{tmp}/pairs/A/world_00000.png: not a readable image",
    ),
    Case(
        "fidelity-corrupt-real-image",
        then(
            b.copy_of("pairs", "pairs", at("A", b.damage("garbage", first=True))),
            "eval fidelity --real {tmp}/pairs/A --fake {pairs}/B --json",
        ),
        "{tmp}/pairs/A/world_00000.png: not a readable image",
    ),
    # ... bad JSON files
    Case(
        "train-generator-gan-config-syntax",
        then(b.write("g.json", '{"generator": {'), TRAIN_GAN + " --gan-config {tmp}/g.json"),
        "{tmp}/g.json: cannot read the GAN config JSON (Expecting",
    ),
    Case(
        "train-generator-gan-config-list",
        then(b.write("g.json", "[1, 2]"), TRAIN_GAN + " --gan-config {tmp}/g.json"),
        "{tmp}/g.json: the GAN config JSON must be an object",
    ),
    Case(
        "train-generator-gan-config-unknown-key",
        then(b.write("g.json", '{"colour": 3}'), TRAIN_GAN + " --gan-config {tmp}/g.json"),
        "{tmp}/g.json",
        xfail=GAN_CONFIG_FILE,
    ),
    Case(
        "train-generator-gan-config-wrong-type",
        then(
            b.write("g.json", '{"generator": {"z_dim": "big"}}'),
            TRAIN_GAN + " --gan-config {tmp}/g.json",
        ),
        "GeneratorConfig z_dim='big': expected a value like 64",
    ),
    Case(
        "train-generator-gan-config-part-not-object",
        then(b.write("g.json", '{"generator": 5}'), TRAIN_GAN + " --gan-config {tmp}/g.json"),
        "the generator must be a JSON object of fields, got 5",
    ),
    Case(
        "simulate-events-json-syntax",
        then(b.write("e.json", '{"events": ['), SIM + " --events {tmp}/e.json"),
        "{tmp}/e.json: not a change-process JSON (JSONDecodeError",
    ),
    Case(
        "simulate-events-json-unknown-event",
        then(
            b.write("e.json", '{"events": [{"kind": "explode"}]}'), SIM + " --events {tmp}/e.json"
        ),
        "{tmp}/e.json: not a change-process JSON (ConfigError: unknown event 'explode'",
    ),
    Case(
        "simulate-events-json-wrong-type",
        then(b.write("e.json", '{"events": 3}'), SIM + " --events {tmp}/e.json"),
        "{tmp}/e.json: not a change-process JSON (TypeError",
    ),
    Case(
        "simulate-events-json-and-flags",
        then(b.write("e.json", '{"events": []}'), SIM + " --events {tmp}/e.json --count 1:2"),
        "--events {tmp}/e.json defines the process; drop --count",
    ),
    Case(
        "generate-kernel-json-syntax",
        then(b.write("k.json", '{"1": {"2": '), GENERATE + " --kernel {tmp}/k.json"),
        "{tmp}/k.json: not a transition kernel (JSONDecodeError",
    ),
    Case(
        "generate-kernel-json-wrong-type",
        then(b.write("k.json", '{"1": {"2": "much"}}'), GENERATE + " --kernel {tmp}/k.json"),
        "{tmp}/k.json: not a transition kernel (ValueError",
    ),
    Case(
        "generate-kernel-json-list",
        then(b.write("k.json", "[1]"), GENERATE + " --kernel {tmp}/k.json"),
        "{tmp}/k.json: not a transition kernel (AttributeError",
    ),
    Case(
        "generate-nuisance-json-syntax",
        then(b.write("n.json", "{"), GENERATE + " --nuisance {tmp}/n.json"),
        "{tmp}/n.json: not a readable JSON nuisance config",
    ),
    Case(
        "generate-nuisance-json-list",
        then(b.write("n.json", "[]"), GENERATE + " --nuisance {tmp}/n.json"),
        "{tmp}/n.json: a nuisance config is a JSON object of strengths",
    ),
    Case(
        "generate-nuisance-json-unknown-key",
        then(b.write("n.json", '{"haze": 0.5}'), GENERATE + " --nuisance {tmp}/n.json"),
        "{tmp}/n.json: unknown nuisance keys haze; use shadows",
    ),
    Case(
        "generate-nuisance-json-bad-preset",
        then(b.write("n.json", '{"preset": "wild"}'), GENERATE + " --nuisance {tmp}/n.json"),
        "{tmp}/n.json: preset 'wild' is not one of off, mild, default, strong",
    ),
    Case(
        "generate-sources-json-syntax",
        then(b.write("s.json", "[{"), "generate --sources {tmp}/s.json --out {tmp}/out"),
        "{tmp}/s.json: not valid JSON",
    ),
    Case(
        "generate-sources-json-no-path",
        then(
            b.write("s.json", '[{"format": "folder"}]'),
            "generate --sources {tmp}/s.json --out {tmp}/out",
        ),
        '{tmp}/s.json: source 0: expected an object with a "path" string',
    ),
    Case(
        "generate-sources-json-object",
        then(b.write("s.json", '{"path": "x"}'), "generate --sources {tmp}/s.json --out {tmp}/out"),
        "{tmp}/s.json: expected a non-empty JSON list",
    ),
    Case(
        "detect-eval-ckpt-config-truncated",
        then(b.ckpt_of("detector", at("config.json", b.damage("truncate"))), EVAL_CKPT),
        "{tmp}/ckpt/config.json: unreadable checkpoint config",
    ),
    Case(
        "generate-gan-ckpt-config-no-kind",
        then(
            b.ckpt_of("gan", at("config.json", b.json_edit(lambda d: d.pop("kind")))),
            GENERATE + " --synthesizer {tmp}/ckpt",
        ),
        "{tmp}/ckpt: checkpoint config.json names no 'kind'",
    ),
    Case(
        "detect-finetune-init-config-no-model",
        then(
            b.ckpt_of("detector", at("config.json", b.json_edit(lambda d: d.pop("model")))),
            FINETUNE,
        ),
        "{tmp}/ckpt",
    ),
    Case(
        "detect-eval-ckpt-config-unknown-model",
        then(
            b.ckpt_of(
                "detector", at("config.json", b.json_edit(lambda d: d.update(model="nonet")))
            ),
            EVAL_CKPT,
        ),
        "{tmp}/ckpt",
    ),
    # ... out-of-range values
    Case("generate-negatives-1.5", cli(GENERATE + " --negatives 1.5"), "'--negatives'"),
    Case("generate-per-image-0", cli(GENERATE + " --per-image 0"), "'--per-image'"),
    Case("generate-crop-0", cli(GENERATE + " --crop 0"), "Invalid value for '--crop'"),
    Case(
        "generate-crop-larger-than-items",
        cli(GENERATE + " --crop 64"),
        "--crop 64 is larger than item 'world_00000' (32×32 w×h); choose a crop of at most 32",
    ),
    Case("generate-shard-size-0", cli(GENERATE + " --shard-size 0"), "'--shard-size'"),
    Case("generate-batch-size-0", cli(GENERATE + " --batch-size 0"), "'--batch-size'"),
    Case(
        "generate-gsd-negative",
        cli(GENERATE + " --gsd -0.5"),
        "--gsd must be a positive number of metres, got -0.5",
    ),
    Case("generate-count-reversed", cli(GENERATE + " --count 5:1"), "--count '5:1': need 0 <="),
    Case(
        "generate-count-not-numbers",
        cli(GENERATE + " --count few"),
        "--count 'few': expected LO:HI (or one value) of ints",
    ),
    Case("generate-scale-negative", cli(GENERATE + " --scale=-1:2"), "--scale '-1:2': need 0 <="),
    Case(
        "generate-within-not-ids",
        cli(GENERATE + " --placement within --within a,b"),
        "--within 'a,b': give class ids separated by commas",
    ),
    Case(
        "generate-within-unknown-class",
        cli(GENERATE + " --placement within --within 77"),
        "77",
    ),
    Case("simulate-steps-0", cli(SIM + " --steps 0"), "Invalid value for '--steps'"),
    Case("simulate-steps-negative", cli(SIM + " --steps -2"), "Invalid value for '--steps'"),
    Case(
        "detect-predict-threshold-1.5",
        cli(PREDICT + " --ckpt {detector} --threshold 1.5"),
        "threshold 1.5 must lie strictly between 0 and 1",
    ),
    Case(
        "detect-eval-threshold-0",
        cli(EVAL_DET + " --threshold 0"),
        "threshold 0.0 must lie strictly between 0 and 1",
    ),
    Case(
        "detect-predict-tile-0",
        cli(PREDICT + " --ckpt {detector} --tile 0"),
        "Invalid value for '--tile'",
    ),
    Case(
        "detect-predict-overlap-too-big",
        cli(PREDICT + " --ckpt {detector} --tile 32 --overlap 32"),
        "overlap 32 must be >= 0 and smaller than the tile (32 px)",
    ),
    Case(
        "detect-predict-batch-size-0",
        cli(PREDICT + " --ckpt {detector} --batch-size 0"),
        "Invalid value for '--batch-size'",
    ),
    Case("detect-eval-batch-size-0", cli(EVAL_DET + " --batch-size 0"), "'--batch-size'"),
    Case("detect-train-crop-0", cli(TRAIN_DET + " --crop 0"), "Invalid value for '--crop'"),
    Case(
        "detect-train-crop-not-multiple-of-32",
        cli(TRAIN_DET + " --crop 40"),
        "crop 40 must be a positive multiple of 32",
    ),
    Case("detect-train-batch-size-0", cli(TRAIN_DET + " --batch-size 0"), "'--batch-size'"),
    Case("detect-train-steps-0", cli(TRAIN_DET + " --steps 0"), "Invalid value for '--steps'"),
    Case(
        "detect-train-epochs-0",
        cli("detect train {pairs} --out {tmp}/out --epochs 0 " + b.DETECT),
        "Invalid value for '--epochs'",
    ),
    Case(
        "detect-train-fraction-0",
        cli(TRAIN_DET + " --train-fraction 0"),
        "train fraction 0.0 must lie in (0, 1]",
    ),
    Case(
        "detect-train-fraction-1.5",
        cli(TRAIN_DET + " --train-fraction 1.5"),
        "train fraction 1.5 must lie in (0, 1]",
    ),
    Case(
        "detect-train-lr-negative",
        cli(TRAIN_DET + " --lr -0.1"),
        "learning rate -0.1 must be positive",
    ),
    Case("detect-train-keep-0", cli(TRAIN_DET + " --keep 0"), "Invalid value for '--keep'"),
    Case("detect-train-workers-negative", cli(TRAIN_DET + " --workers -1"), "'--workers'"),
    Case(
        "detect-train-validate-every-negative",
        cli(TRAIN_DET + " --validate-every -1"),
        "Invalid value for '--validate-every'",
    ),
    Case(
        "detect-train-objects-not-ids",
        cli(TRAIN_DET + " --objects roofs"),
        "--objects 'roofs': give class ids separated by commas",
    ),
    Case(
        "train-generator-size-not-multiple-of-32",
        cli(TRAIN_GAN + " --size 40"),
        "--size 40 is not a multiple of 32",
    ),
    Case(
        "train-generator-holdout-1.5",
        cli(TRAIN_GAN + " --holdout 1.5"),
        "--holdout 1.5 must be in [0, 1)",
    ),
    Case(
        "train-generator-ema-decay-1",
        cli(TRAIN_GAN + " --ema-decay 1"),
        "ema_decay=1.0 must be in [0, 1)",
    ),
    Case(
        "train-generator-lr-0",
        cli(TRAIN_GAN + " --lr-g 0"),
        "lr_g, lr_d and width must be positive",
    ),
    Case(
        "train-generator-width-0",
        cli(TRAIN_GAN + " --width 0"),
        "lr_g, lr_d and width must be positive",
    ),
    Case("train-generator-steps-0", cli(TRAIN_GAN + " --steps 0"), "value for '--steps'"),
    Case(
        "train-generator-devices-word",
        cli(TRAIN_GAN + " --devices many"),
        "devices 'many': give a number or 'auto'",
    ),
    Case(
        "train-generator-scale-reversed",
        cli(TRAIN_GAN + " --scale 2:1"),
        "--scale '2:1': need 0 <= LO <= HI",
    ),
    Case("demo-size-16", cli(DEMO + " --n 1 --size 16"), "Invalid value for '--size'"),
    Case("demo-n-0", cli(DEMO + " --n 0"), "Invalid value for '--n'"),
    Case("sample-world-size-0", cli(WORLD + " --size 0"), "Invalid value for '--size'"),
    Case("sample-world-size-negative", cli(WORLD + " --size -32"), "Invalid value for '--size'"),
    Case("fidelity-patch-0", cli(FIDELITY + " --patch 0"), "Invalid value for '--patch'"),
    Case(
        "fidelity-patch-larger-than-images",
        cli(FIDELITY + " --patch 64"),
        "{pairs}/A: world_00000: image is 32×32, smaller than patch 64; lower --patch",
    ),
    Case("fidelity-kid-subset-1", cli(FIDELITY + " --kid-subset-size 1"), "'--kid-subset-size'"),
    Case(
        "fidelity-change-fraction-2",
        cli(FIDELITY + " --change-fraction 2"),
        "change_fraction=2.0: must be in (0, 1]",
    ),
    Case("fidelity-batch-size-0", cli(FIDELITY + " --batch-size 0"), "'--batch-size'"),
    Case("detect-info-size-0", cli("detect info --size 0 --json"), "Invalid value for '--size'"),
    Case(
        "inspect-binary-threshold-negative",
        cli("data inspect {pairs} --binary-threshold -1"),
        "Invalid value for '--binary-threshold'",
    ),
    # ... unknown names
    Case(
        "simulate-unknown-format",
        cli(SIM + " --format shapefile"),
        "unknown dataset format 'shapefile'; choose one of: second, levircd",
    ),
    Case(
        "simulate-wrong-format",
        cli(SIM + " --format xview2"),
        "{scenes}: no xView2 pre-disaster images with labels found; check the path",
    ),
    Case(
        "simulate-unknown-taxonomy",
        cli(SIM + " --taxonomy corine"),
        "unknown taxonomy 'corine'; choose one of",
    ),
    Case(
        "simulate-unknown-event",
        cli(SIM + " --events create,explode"),
        "unknown event 'explode' in 'create,explode'; choose from create, remove, reclass",
    ),
    Case(
        "simulate-unknown-unlabeled",
        cli(SIM + " --unlabeled sam2"),
        "--unlabeled 'sam2': choose one of none, instances",
    ),
    Case(
        "simulate-unknown-fill",
        cli(SIM + " --fill lava"),
        "remove fill must be background or surrounding, got 'lava'",
    ),
    Case(
        "simulate-unknown-placement",
        cli(SIM + " --placement sky"),
        "create placement must be one of free, within, homogeneous, got 'sky'",
    ),
    Case(
        "simulate-unknown-rotate",
        cli(SIM + " --rotate 45"),
        "create rotation must be none, 90 or any, got '45'",
    ),
    Case(
        "generate-unknown-layout",
        cli(GENERATE + " --layout coco"),
        "unknown layout 'coco'; choose one of levircd",
    ),
    Case(
        "generate-unknown-synthesizer",
        cli(GENERATE + " --synthesizer dalle"),
        "unknown synthesizer 'dalle'; choose one of copy_paste, inpaint",
    ),
    Case(
        "generate-detector-as-synthesizer",
        cli(GENERATE + " --synthesizer {det_ckpt}"),
        "{det_ckpt}: a 'changen_detector' checkpoint is not a synthesizer",
    ),
    Case(
        "generate-unknown-nuisance",
        cli(GENERATE + " --nuisance heavy"),
        "--nuisance heavy: not a preset (off, mild, default, strong) nor a JSON file",
    ),
    Case(
        "generate-unknown-executor",
        cli(GENERATE + " --executor slurm"),
        "--executor 'slurm': choose one of local, ray",
    ),
    Case(
        "generate-unknown-empty",
        cli(GENERATE + " --empty drop"),
        "--empty 'drop': choose one of nochange, skip",
    ),
    Case(
        "generate-gan-unknown-device",
        cli(GENERATE + " --synthesizer {gan_ckpt} --device tpu"),
        "--device 'tpu': not a torch device; use auto, cpu, cuda or cuda:N",
    ),
    Case(
        "convert-unknown-layout",
        cli("data convert {pairs} {tmp}/out --layout coco"),
        "unknown output layout 'coco'; choose one of",
    ),
    Case(
        "convert-unknown-split",
        cli("data convert {pairs} {tmp}/out --layout second --split val"),
        "{pairs}: split 'val' asked for, but this flat layout has no list/val.txt",
    ),
    Case(
        "detect-train-unknown-model",
        cli("detect train {pairs} --out {tmp}/out --model unet3000 --steps 1 --crop 32"),
        "unknown detector 'unet3000'; choose one of",
    ),
    Case(
        "detect-train-unknown-backbone",
        cli("detect train {pairs} --out {tmp}/out --backbone vit_huge --steps 1 --crop 32"),
        "unknown backbone 'vit_huge'; choose one of",
    ),
    Case(
        "detect-train-fc-with-backbone",
        cli(TRAIN_DET + " --backbone resnet18"),
        "FC-diff has its own encoder; do not pass backbone='resnet18'",
    ),
    Case(
        "detect-train-unknown-mode",
        cli(TRAIN_DET + " --mode unsupervised"),
        "mode 'unsupervised': choose one of supervised, star, gstar",
    ),
    Case(
        "detect-train-unknown-optimizer",
        cli(TRAIN_DET + " --optimizer lion"),
        "optimizer 'lion': choose sgd or adamw",
    ),
    Case(
        "detect-train-unknown-precision",
        cli(TRAIN_DET + " --precision fp8"),
        "precision 'fp8': choose one of fp32, bf16",
    ),
    Case(
        "detect-train-unknown-accelerator",
        cli(TRAIN_DET + " --accelerator quantum"),
        "quantum",
    ),
    Case(
        "detect-train-star-on-change-pairs",
        cli(TRAIN_DET + " --mode star"),
        "{pairs}: STAR training needs a scene dataset, got a change dataset",
    ),
    Case(
        "detect-train-val-is-scenes",
        cli(TRAIN_DET + " --val {scenes}"),
        "{scenes}: validation needs a change dataset",
    ),
    Case(
        "detect-eval-scene-dataset",
        cli("detect eval {scenes} --ckpt {detector} --no-progress"),
        "{scenes}: evaluation needs a change dataset",
    ),
    Case(
        "detect-eval-unknown-split",
        cli(EVAL_DET + " --split test"),
        "{pairs}: split 'test' asked for, but this flat layout has no list/test.txt",
    ),
    Case(
        "detect-eval-ckpt-is-gan",
        cli("detect eval {pairs} --ckpt {gan} --no-progress"),
        "{gan_ckpt}: a 'changen_gan' checkpoint, not a change detector",
    ),
    Case(
        "detect-predict-out-jpg",
        cli(PREDICT.replace("change.png", "change.jpg") + " --ckpt {detector}"),
        "{tmp}/change.jpg: write the change map as .tif (GeoTIFF) or .png",
    ),
    Case(
        "detect-predict-unknown-precision",
        cli(PREDICT + " --ckpt {detector} --precision fp4"),
        "precision 'fp4': choose",
    ),
    Case(
        "detect-info-unknown-model",
        cli("detect info --model nonet --json"),
        "unknown detector 'nonet'; choose one of",
    ),
    Case(
        "detect-info-unknown-backbone",
        cli("detect info --backbone vgg99 --json"),
        "unknown backbone 'vgg99'; choose one of",
    ),
    Case(
        "train-generator-unknown-preset",
        cli(TRAIN_GAN + " --preset huge"),
        "unknown GAN preset 'huge'; choose one of",
    ),
    Case(
        "train-generator-unknown-precision",
        cli(TRAIN_GAN + " --precision fp8"),
        "precision 'fp8': choose one of fp32, bf16",
    ),
    Case(
        "train-generator-change-dataset",
        cli("train generator {pairs} --out {tmp}/out " + b.GAN_RUN),
        "{pairs}: is a change dataset (levircd); train the generator on single-temporal scenes",
    ),
    Case(
        "fidelity-unknown-regions",
        cli(FIDELITY + " --regions edges"),
        "regions='edges': choose one of all, changed, unchanged",
    ),
    Case(
        "fidelity-changed-regions-of-plain-folders",
        cli(FIDELITY + " --regions changed"),
        "regions='changed' needs change masks for {pairs}/A",
    ),
    Case(
        "fidelity-unknown-device",
        cli(FIDELITY + " --device tpu"),
        "device='tpu': not a torch device",
    ),
    # ... resume and overwrite
    Case(
        "generate-resume-different-seed",
        then(b.copy_of("generated", "gen"), RESUME + " --seed 7"),
        "{tmp}/gen: --resume with a different config (seed differ from generation.json)",
    ),
    Case(
        "generate-resume-not-a-generate-output",
        then(b.write("out/notes.txt", "mine"), GENERATE + " --resume"),
        "{tmp}/out: has no generation.json, so it is not a changen generate output to resume",
    ),
    Case(
        "generate-resume-and-overwrite",
        then(b.copy_of("generated", "gen"), RESUME + " --overwrite"),
        "--resume keeps what --out holds and --overwrite deletes it; pick one",
    ),
    Case(
        "generate-out-not-empty",
        then(b.write("out/notes.txt", "mine"), GENERATE),
        "{tmp}/out: the output folder is not empty; pass --resume",
    ),
    Case(
        "generate-over-generated-without-flags",
        then(b.copy_of("generated", "gen"), "generate {scenes} --out {tmp}/gen " + b.GEN),
        "{tmp}/gen: the output folder is not empty; pass --resume",
    ),
    Case(
        "simulate-out-not-empty",
        then(b.write("out/notes.txt", "mine"), SIM),
        "{tmp}/out: the output folder is not empty; choose a new or empty folder, or pass",
    ),
    Case(
        "convert-out-not-empty",
        then(b.write("out/notes.txt", "mine"), "data convert {pairs} {tmp}/out --layout second"),
        "{tmp}/out: the output folder is not empty; choose a new or empty folder, or pass",
    ),
    Case(
        "sample-world-out-not-empty",
        then(b.write("out/notes.txt", "mine"), WORLD),
        "{tmp}/out: the output folder is not empty; choose a new or empty folder, or pass",
    ),
    Case(
        "demo-out-not-empty",
        then(b.write("out/notes.txt", "mine"), DEMO),
        "{tmp}/out: the output folder is not empty; choose a new or empty folder, or pass",
    ),
    Case(
        "detect-train-out-not-empty",
        then(b.write("out/notes.txt", "mine"), TRAIN_DET),
        "{tmp}/out: the output folder is not empty; choose a new or empty folder, or pass",
    ),
    Case(
        "train-generator-out-not-empty",
        then(b.write("out/notes.txt", "mine"), TRAIN_GAN),
        "{tmp}/out: the output folder is not empty; choose a new or empty folder, or pass",
    ),
    Case(
        "detect-train-over-a-run-without-resume",
        then(b.copy_of("detector", "run"), "detect train {pairs} --out {tmp}/run " + b.DETECT_RUN),
        "{tmp}/run: the output folder is not empty",
    ),
    Case(
        "detect-predict-out-exists",
        then(b.write("change.png", "old"), PREDICT + " --ckpt {detector}"),
        "{tmp}/change.png exists; choose another --out or pass --overwrite",
    ),
    Case(
        "detect-train-resume-different-lr",
        then(b.copy_of("detector", "run"), RESUME_DET + " --lr 0.5"),
        "{tmp}/run: resuming with a different lr than the run was started with",
    ),
    Case(
        "train-generator-resume-different-preset",
        then(b.copy_of("gan", "run"), RESUME_GAN + " --preset changen"),
        "--preset: fixed by the run's config.json when resuming",
    ),
    # ... command lines
    Case(
        "generate-no-source",
        cli("generate --out {tmp}/out"),
        "name a source dataset (SOURCE ...) or a sources file (--sources FILE)",
    ),
    Case(
        "generate-missing-out",
        cli("generate {scenes}"),
        "Missing option '--out' / '-o'; see `changen generate --help`",
    ),
    Case(
        "simulate-unknown-option",
        cli(SIM + " --colour red"),
        "No such option: --colour",
    ),
    Case(
        "train-generator-no-data",
        cli("train generator --out {tmp}/out --no-progress"),
        "DATA is required (the single-temporal dataset to train on)",
    ),
    Case(
        "train-generator-event-options-without-data",
        cli("train generator --out {tmp}/out --count 1:2 --no-progress"),
        "event options need DATA",
    ),
    Case(
        "detect-predict-ckpt-and-official",
        cli(PREDICT + " --ckpt {detector} --official-weights {tmp}/w.pth"),
        "give exactly one of --ckpt CKPT and --official-weights FILE",
    ),
    Case(
        "detect-eval-no-model",
        cli("detect eval {pairs} --no-progress"),
        "give exactly one of --ckpt CKPT and --official-weights FILE",
    ),
    Case(
        "detect-predict-extra-argument",
        cli(PREDICT + " {pairs}/A/world_00001.png --ckpt {detector}"),
        "Got unexpected extra argument(s) ({pairs}/A/world_00001.png)",
    ),
    Case(
        "seed-not-a-number",
        cli(SIM + " --seed abc"),
        "Invalid value for '--seed': Input should be a valid integer",
    ),
]


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return b.build_base(tmp_path_factory.mktemp("bad_inputs_base"))


@pytest.fixture(scope="module", autouse=True)
def click_tree_once() -> Iterator[None]:
    """Build typer's click command tree once for the module, not on every ``main()`` (60 ms
    a call, the corpus's largest cost); parsing, and everything after it, is unchanged."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(typer.main, "get_command", functools.cache(typer.main.get_command))
        yield


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def test_the_corpus_has_100_distinct_cases() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 100, len(ids)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(
    case: Case,
    base: Base,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # what a command writes by default lands in the snapshot
    monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.setattr(sys, "argv", sys.argv)
    args = case.build(tmp_path, base)
    before, base_before = snapshot(tmp_path), snapshot(base.root, content=False)
    capfd.readouterr()
    with held(None if case.busy is None else tmp_path / case.busy):
        code, err = run_cli(args, capfd)
    lines = err.strip().splitlines()
    assert code in (2, 3) and "Traceback" not in err, f"exit {code}: {err}"  # usage / data
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    expect = case.expect.format(**base.places(tmp_path))
    assert expect in lines[0], f"{expect!r} not in {lines[0]!r}"
    case.left(before, snapshot(tmp_path))
    untouched(base_before, snapshot(base.root, content=False))


@pytest.mark.usefixtures("one_thread")
def test_gallery_escapes_hostile_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Class 2 of the corpus without a browser: ``changen gallery`` on a LEVIR-CD folder whose
    folder and sample names would run script if they reached the page unescaped writes a page
    whose only tags are the gallery's own and whose names are text."""
    folder, _, _ = hostile_dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(
        ["gallery", str(folder), "--out", str(tmp_path / "g" / "index.html")], capfd
    )
    assert code == 0, err
    parser = PageParser()
    parser.feed((tmp_path / "g" / "index.html").read_text(encoding="utf-8"))
    tags = {tag for tag, _ in parser.tags}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    assert [a for t, a in parser.tags if t == "script"] == [{"src": "gallery.js"}]
    assert not any(name.startswith("on") for _, attrs in parser.tags for name in attrs)
    text = "".join(parser.text)
    assert all(name in text for name in FILE_SAFE)
