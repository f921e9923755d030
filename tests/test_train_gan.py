"""Changen GAN training: data pipeline, bitemporal wiring, learning signal, exact resume, logs."""

from __future__ import annotations

import random
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_fabric import Fabric
from safetensors.torch import load_file

from changen.data.world import write_sample_world
from changen.engine.checkpoint import load_config, load_state
from changen.engine.config import RunConfig
from changen.engine.data import make_loader
from changen.engine.metrics import MetricsLog, read_metrics
from changen.engine.progress import Advance
from changen.errors import ConfigError, DataError
from changen.synthesis.gan import train as gan_module
from changen.synthesis.gan.train import GanTrainer, d_accuracy, train_generator
from changen.synthesis.gan.train_config import (
    GanTrainConfig,
    resolve_gan,
    resume_config,
    scale_widths,
)
from changen.synthesis.gan.train_data import StepBatchSampler, holdout_split
from changen.taxonomies import OPENEARTHMAP

WORLD_SIZE = 96


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 96 px sample-world scenes (OpenEarthMap classes, instance maps)."""
    return write_sample_world(tmp_path_factory.mktemp("world") / "w", n=6, seed=0, size=96)


def tiny(world: Path, **kw) -> GanTrainConfig:
    base = {
        "data": str(world),
        "preset": "tiny",
        "size": 32,
        "batch_size": 2,
        "steps": 6,
        "holdout": 0.2,
        "run": RunConfig(accelerator="cpu", log_every=1, save_every=0),
        "sample_every": 0,
        "preview": 1,
    }
    return GanTrainConfig(**{**base, **kw})


class NoteRecorder:
    """A progress sink that keeps the notes it is given."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def task(self, description: str, total: int | None, completed: int = 0) -> Advance:
        return lambda n=1, info=None: None

    def note(self, text: str) -> None:
        self.notes.append(text)


def cpu() -> Fabric:
    return Fabric(accelerator="cpu", devices=1)


# -- data ------------------------------------------------------------------------------------


def test_holdout_is_deterministic_disjoint_and_spread() -> None:
    train, held = holdout_split(20, 0.1)
    assert held == [0, 10] and len(train) == 18 and not set(train) & set(held)
    assert holdout_split(20, 0.1) == (train, held)
    assert holdout_split(5, 0.01)[1] == [0]  # at least one item when asked for any
    assert holdout_split(1, 0.5) == ([0], [])  # never all of them
    assert holdout_split(7, 0.0) == (list(range(7)), [])
    with pytest.raises(ConfigError, match="holdout"):
        holdout_split(10, 1.0)


def test_sampler_order_depends_only_on_seed_and_step() -> None:
    indices = [0, 2, 3, 5, 7]
    straight = StepBatchSampler(indices, 4, seed=3)
    it = iter(straight)
    batches = [next(it) for _ in range(10)]
    resumed = iter(StepBatchSampler(indices, 4, seed=3, start_step=6))
    assert [next(resumed) for _ in range(4)] == batches[6:]
    # each epoch is a permutation of the training items, epochs differ
    keys = [k for b in batches for k in b]
    by_epoch = {}
    for epoch, index in keys:
        by_epoch.setdefault(epoch, []).append(index)
    assert all(sorted(v) == indices for e, v in by_epoch.items() if e < max(by_epoch))
    assert by_epoch[0] != by_epoch[1]
    # two ranks split each global batch without overlap
    ranks = [StepBatchSampler(indices, 4, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for step in range(5):
        assert ranks[0].keys(step) + ranks[1].keys(step) == straight.keys(step)
    assert StepBatchSampler(indices, 4, seed=4).keys(0) != straight.keys(0)
    with pytest.raises(ConfigError, match="multiple"):
        StepBatchSampler(indices, 3, seed=0, world_size=2)


def test_items_are_deterministic_and_worker_independent(world: Path) -> None:
    trainer = GanTrainer(tiny(world, size=64), cpu())
    data = trainer.data
    a, b = data[(1, 2)], data[(1, 2)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["t1_image"].shape == (3, 64, 64) and a["t1_image"].dtype == torch.uint8
    assert a["t1_mask"].shape == (64, 64) and a["noise"].shape == (4,)
    assert not torch.equal(a["t1_image"], data[(2, 2)]["t1_image"])  # a new epoch, a new crop
    # S_t+1 comes from the events: over a few items some pixels change, and ids stay in range
    changed = sum(int((data[(0, i)]["t1_mask"] != data[(0, i)]["t2_mask"]).sum()) for i in (1, 2))
    assert changed > 0
    assert int(a["t2_mask"].max()) < trainer.gan.num_classes
    sampler = StepBatchSampler(trainer.train_indices, 2, seed=0)
    serial = iter(make_loader(data, sampler, workers=0, seed=0))
    parallel = iter(make_loader(data, sampler, workers=2, seed=0))
    for _ in range(3):
        x, y = next(serial), next(parallel)
        assert all(torch.equal(x[k], y[k]) for k in x)


def test_config_checks_and_width_scaling(world: Path) -> None:
    with pytest.raises(ConfigError, match=r"multiple of 32.*--size 96"):
        GanTrainConfig(data=str(world), size=100)
    with pytest.raises(ConfigError, match="precision"):
        RunConfig(precision="fp16")  # type: ignore[arg-type]  # the invalid value under test
    config = tiny(world)
    gan = resolve_gan(config, OPENEARTHMAP)
    assert gan.num_classes == 9 and gan.generator.ignore_index == 255
    wide = scale_widths(gan, 2.0)
    assert wide.generator.feature_channels == tuple(2 * c for c in gan.generator.feature_channels)
    assert wide.discriminator.channels == tuple(2 * c for c in gan.discriminator.channels)
    assert (
        resolve_gan(tiny(world, preset="spade_gpcm"), OPENEARTHMAP).generator.use_encoder is False
    )


def test_crop_larger_than_images_and_change_datasets_are_refused(
    world: Path, tmp_path: Path
) -> None:
    with pytest.raises(DataError, match=r"smaller than the 128×128 training crop"):
        GanTrainer(tiny(world, size=128), cpu()).data.example(0, 0)
    pairs = write_sample_world(tmp_path / "pairs", n=1, seed=0, size=64, pairs=True)
    with pytest.raises(DataError, match="change dataset"):
        GanTrainer(tiny(pairs), cpu())


# -- bitemporal adversarial learning -----------------------------------------------------------


def test_losses_see_real_pre_event_pair_and_fake_post_event_pair(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = GanTrainer(tiny(world), cpu())
    batch = next(trainer.batches())
    image, t1_mask, t2_mask, _ = trainer.inputs(batch)
    assert not torch.equal(t1_mask, t2_mask)
    seen = {}
    real_d, real_g = gan_module.d_loss, gan_module.g_loss

    def spy_d(d, real_image, real_mask, fake_image, fake_mask, ignore_index):
        seen["d"] = (real_image, real_mask, fake_image, fake_mask)
        return real_d(d, real_image, real_mask, fake_image, fake_mask, ignore_index)

    def spy_g(d, fake_image, fake_mask, ignore_index):
        seen["g"] = (fake_image, fake_mask)
        return real_g(d, fake_image, fake_mask, ignore_index)

    monkeypatch.setattr(gan_module, "d_loss", spy_d)
    monkeypatch.setattr(gan_module, "g_loss", spy_g)
    _, fake = trainer.train_step(batch)
    real_image, real_mask, fake_image, fake_mask = seen["d"]
    assert torch.equal(real_image, image) and torch.equal(real_mask, t1_mask)  # (I_t, S_t)
    assert torch.equal(fake_image, fake) and torch.equal(fake_mask, t2_mask)  # (G(.), S_t+1)
    assert not fake_image.requires_grad  # D's loss never reaches G
    assert torch.equal(seen["g"][1], t2_mask) and seen["g"][0].requires_grad


def test_discriminator_learns_to_separate_real_pre_event_from_fake(world: Path) -> None:
    """D-only steps on one batch: fake pixels become "fake", real pixels their S_t class -
    including the pixels the events changed, where S_t+1 would say otherwise."""
    trainer = GanTrainer(tiny(world, size=64, batch_size=4, lr_d=1e-3), cpu())
    batch = next(trainer.batches())
    fake = trainer.fake(batch)
    image, t1_mask, t2_mask, _ = trainer.inputs(batch)
    changed = t1_mask != t2_mask
    assert changed.sum() > 100

    def measure() -> tuple[float, float, float, float]:
        with torch.no_grad():
            real_logits, fake_logits = trainer.discriminator(image), trainer.discriminator(fake)
        pred = real_logits.argmax(1)
        as_t = ((pred == t1_mask + 1) & changed).sum() / changed.sum()
        as_t1 = ((pred == t2_mask + 1) & changed).sum() / changed.sum()
        return (
            float(d_accuracy(real_logits, t1_mask, real=True)),
            float(d_accuracy(fake_logits, t2_mask, real=False)),
            float(as_t),
            float(as_t1),
        )

    real0, fake0, _, _ = measure()
    for _ in range(30):
        trainer.d_step(batch, fake)
    real1, fake1, as_t, as_t1 = measure()
    assert fake1 > max(fake0, 0.9)
    assert real1 > real0 + 0.15
    assert as_t > as_t1 + 0.2  # changed pixels of I_t are segmented as S_t, not S_t+1
    # G against this frozen D: its loss (fakes classified as S_t+1) falls
    losses = [float(trainer.g_step(batch)[0]) for _ in range(6)]
    assert losses[-1] < 0.8 * losses[0]


def test_full_steps_move_losses_in_the_expected_directions(world: Path) -> None:
    """Early in training D learns to spot the fakes: D's loss falls and G's rises; every
    network (and the EMA) moves."""
    trainer = GanTrainer(tiny(world, steps=14), cpu())
    g0 = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    d0 = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    batches = trainer.batches()
    history = []
    for _ in range(14):
        batch = next(batches)
        losses, fake = trainer.train_step(batch)
        history.append((float(losses["loss_d"]), float(losses["loss_g"])))
    first_d, first_g = np.mean(history[:2], axis=0)
    last_d, last_g = np.mean(history[-3:], axis=0)
    assert last_d < first_d - 0.5
    assert last_g > first_g + 0.2
    assert float(trainer.d_accuracies(batch, fake)["d_acc_fake"]) > 0.9
    assert trainer.step == 14
    key = "head.parametrizations.weight.original"
    g, ema = trainer.generator.state_dict()[key], trainer.ema.state_dict()[key]
    assert not torch.equal(g, g0[key]) and not torch.equal(ema, g0[key])
    assert not torch.equal(ema, g)  # the EMA lags behind G
    assert (ema - g0[key]).abs().sum() < (g - g0[key]).abs().sum()
    assert any(not torch.equal(v, d0[k]) for k, v in trainer.discriminator.state_dict().items())


PAPER_PRESETS = [
    "changen",
    "changen_no_destyle",
    "changen_no_mask_destyle",
    "oasis_gpcm",
    "spade_gpcm",
]


@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_every_preset_trains_at_reduced_width(world: Path, preset: str) -> None:
    """The paper's configuration, its ablations and the OASIS/SPADE + GPCM baselines (no
    pre-event encoder; SPADE without noise) all run a training step."""
    trainer = GanTrainer(tiny(world, preset=preset, width=1 / 32), cpu())
    assert trainer.gan.generator.use_encoder == preset.startswith("changen")
    losses, fake = trainer.train_step(next(trainer.batches()))
    assert fake.shape == (2, 3, 32, 32)
    assert all(torch.isfinite(v) for v in losses.values())


# -- exact resume ------------------------------------------------------------------------------


def _record_keys(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[int, int]]]:
    keys: list[list[tuple[int, int]]] = []
    step = GanTrainer.train_step

    def recording(self, batch):
        keys.append(list(zip(batch["epoch"].tolist(), batch["index"].tolist(), strict=True)))
        return step(self, batch)

    monkeypatch.setattr(GanTrainer, "train_step", recording)
    return keys


def test_resume_reproduces_the_uninterrupted_run(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = _record_keys(monkeypatch)
    k = 3
    straight = train_generator(tiny(world, steps=2 * k), tmp_path / "a")
    straight_keys = list(keys)
    keys.clear()
    train_generator(tiny(world, steps=k), tmp_path / "b")
    resumed = train_generator(
        resume_config(tmp_path / "b", steps=2 * k), tmp_path / "b", resume=True
    )
    assert keys == straight_keys  # the same data, in the same order
    assert straight_keys[k:] != straight_keys[:k] and resumed.step == 2 * k
    a, b = straight.checkpoint, resumed.checkpoint
    for name in ("generator", "generator_ema", "discriminator"):
        wa, wb = (load_file(str(c / f"{name}.safetensors")) for c in (a, b))
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[n], wb[n]) for n in wa), name
    sa, sb = load_state(a), load_state(b)
    assert sa["step"] == sb["step"] == 2 * k
    for opt in ("optimizer_g", "optimizer_d"):
        for pa, pb in zip(sa[opt]["state"].values(), sb[opt]["state"].values(), strict=True):
            assert all(torch.equal(pa[s], pb[s]) for s in pa)
    assert sa["ema"] == sb["ema"] and sa["data"] == sb["data"]
    assert load_config(a)["train"] == load_config(b)["train"]
    # the resumed CSV reads as one run with the same losses
    rows_a, rows_b = (read_metrics(tmp_path / run / "metrics.csv") for run in "ab")
    assert [s for s, _ in rows_b] == list(range(1, 2 * k + 1))
    assert [r["loss_g"] for _, r in rows_a] == [r["loss_g"] for _, r in rows_b]


def test_resume_refuses_changed_settings(world: Path, tmp_path: Path) -> None:
    train_generator(tiny(world, steps=1, preview=0), tmp_path / "r")
    with pytest.raises(ConfigError, match="size"):
        resume_config(tmp_path / "r", size=64)
    with pytest.raises(ConfigError, match="seed"):
        train_generator(tiny(world, steps=2, seed=1), tmp_path / "r", resume=True)
    with pytest.raises(DataError, match="no checkpoint"):
        resume_config(tmp_path / "nothing")


# -- logs --------------------------------------------------------------------------------------


def test_metrics_log_appends_adds_columns_and_truncates_on_resume(tmp_path: Path) -> None:
    path, plot = tmp_path / "metrics.csv", tmp_path / "losses.png"
    log = MetricsLog(path, plot=plot, plot_interval=0.0)
    log.log(1, loss_g=1.0, loss_d=2.0)
    log.log(2, loss_g=0.5, loss_d=1.5)
    log.log(2, fid=40.0)
    log.log(3, loss_g=0.25, loss_d=1.0)
    assert path.read_text().splitlines() == [
        "step,loss_g,loss_d,fid",
        "1,1,2,",
        "2,0.5,1.5,",
        "2,,,40",
        "3,0.25,1,",
    ]
    assert plot.stat().st_size > 1000
    with open(path, "a") as f:
        f.write("4,0.1")  # a crash in the middle of a row
    assert read_metrics(path)[-1] == (3, {"loss_g": 0.25, "loss_d": 1.0})
    resumed = MetricsLog(path, resume_step=2)
    resumed.log(3, loss_g=9.0, loss_d=9.0)
    assert [s for s, _ in read_metrics(path)] == [1, 2, 2, 3]
    assert read_metrics(path)[-1][1]["loss_g"] == 9.0


def test_fid_is_logged_when_available_and_skipped_once_when_not(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def compute_fidelity(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        calls.append((real.shape, fake.shape, real.dtype, fake.dtype))
        return {"fid": 12.5, "kid_mean": 0.25}

    module = types.ModuleType("changen.metrics.fidelity")
    module.compute_fidelity = compute_fidelity  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "changen.metrics.fidelity", module)
    config = tiny(world, steps=2, fid_every=1, fid_samples=4, preview=0)
    train_generator(config, tmp_path / "a")
    assert calls == [((1, 32, 32, 3), (1, 32, 32, 3), np.uint8, np.uint8)] * 2  # 1 held-out item
    rows = [r for _, r in read_metrics(tmp_path / "a/metrics.csv") if "fid" in r]
    assert rows == [{"fid": 12.5, "kid_mean": 0.25}] * 2

    def broken(real: np.ndarray, fake: np.ndarray) -> float:
        raise RuntimeError("no Inception weights")

    module.compute_fidelity = broken  # type: ignore[attr-defined]
    notes = NoteRecorder()
    train_generator(config, tmp_path / "b", progress=notes)
    assert notes.notes == ["FID/KID skipped from now on: no Inception weights"]
    assert all("fid" not in r for _, r in read_metrics(tmp_path / "b/metrics.csv"))


@pytest.mark.real
@pytest.mark.parametrize(
    ("folder", "format", "class_ids"),
    [("xview2_joplin", "xview2", [0, 1]), ("loveda", "loveda", [1, 2, 3, 4, 5, 6, 7])],
)
def test_trains_on_real_tiles(
    real_root: Path, tmp_path: Path, folder: str, format: str, class_ids: list[int]
) -> None:
    """Two steps on real 1024² tiles: xView2 pre-disaster buildings, and LoveDA, whose ignore
    id is 0 and background 1 (mapped to GAN classes 0..6, ignore 255)."""
    config = tiny(real_root / folder, format=format, size=64, steps=2, holdout=0.34)
    result = train_generator(config, tmp_path / "run")
    saved = load_config(result.checkpoint)
    assert saved["class_ids"] == class_ids
    assert saved["gan"]["generator"]["num_classes"] == len(class_ids)
    assert (tmp_path / "run/samples/step-2.png").is_file()
    rows = read_metrics(tmp_path / "run/metrics.csv")
    assert len(rows) == 2 and all(np.isfinite(list(r.values())).all() for _, r in rows)


def _crash_after(run: Path, step: int) -> None:
    """Leave ``run`` as a run killed after its ``step-<step>`` checkpoint: newer checkpoints
    and ``last/`` are gone (their metrics rows stay, as a killed run leaves them)."""
    for path in (run / "checkpoints").iterdir():
        if path.name != f"step-{step}":
            shutil.rmtree(path)


def test_resume_after_a_crash_logs_the_same_rows_and_rng(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints (every 3) fall inside a logging window (every 4): the window travels in the
    checkpoint, and the global RNG states at step 4 are those the run had before the crash."""
    seen: list[tuple[torch.Tensor, tuple, int]] = []
    update = GanTrainer.update

    def recording(self):
        seen.append((torch.get_rng_state(), random.getstate(), int(np.random.randint(1 << 30))))
        return update(self)

    monkeypatch.setattr(GanTrainer, "update", recording)
    run = RunConfig(accelerator="cpu", log_every=4, save_every=3, keep=5)
    straight = train_generator(tiny(world, steps=6, run=run), tmp_path / "a")
    seen.clear()
    train_generator(tiny(world, steps=6, run=run), tmp_path / "b")
    before_crash = list(seen)
    _crash_after(tmp_path / "b", 3)
    seen.clear()
    resumed = train_generator(resume_config(tmp_path / "b"), tmp_path / "b", resume=True)
    assert resumed.step == straight.step == 6
    rows_a, rows_b = (read_metrics(tmp_path / r / "metrics.csv") for r in "ab")
    assert [s for s, _ in rows_b] == [s for s, _ in rows_a] == [4, 6]
    for (_, ra), (_, rb) in zip(rows_a, rows_b, strict=True):
        assert {k: v for k, v in ra.items() if k != "s_per_step"} == {
            k: v for k, v in rb.items() if k != "s_per_step"
        }
    torch_a, python_a, numpy_a = before_crash[3]
    torch_b, python_b, numpy_b = seen[0]
    assert torch.equal(torch_a, torch_b) and python_a == python_b and numpy_a == numpy_b
