"""Detector training: augmentations, data, losses, metrics, the Fabric loop, exact resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from changen.data.readers import open_dataset
from changen.data.readers.base import ChangeReader
from changen.detectors import ChangeOutput, load_detector
from changen.detectors.augment import IGNORE, PairAugmentConfig, augment
from changen.detectors.data import (
    ChangePairDataset,
    EpochBatchSampler,
    SegSpec,
    StarPairDataset,
    subset_indices,
)
from changen.detectors.evaluate import evaluate_detector
from changen.detectors.train import DetectorTrainConfig, build_model, detector_loss, train_detector
from changen.engine.config import RunConfig
from changen.engine.metrics import read_metrics
from changen.errors import ConfigError, DataError, OutputExistsError
from changen.sample import ChangeSample
from changen.taxonomies import BINARY_BUILDING, LOVEDA, OPENEARTHMAP

torch.set_num_threads(1)

TINY = {"model": "fc_siam_diff", "batch_size": 2, "aug": PairAugmentConfig(crop=64)}


# ---------------------------------------------------------------------------- augmentation


def test_geometry_is_shared_and_labels_stay_aligned() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, (96, 96)).astype(np.uint8)
    image = np.repeat((label * 60)[..., None], 3, axis=2)
    config = PairAugmentConfig(crop=64, brightness=0, contrast=0, saturation=0)
    for seed in range(8):
        images, labels = augment(
            np.random.default_rng(seed), {"t1": image, "t2": image}, {"m": label}, config
        )
        assert images["t1"].shape == (64, 64, 3) and labels["m"].shape == (64, 64)
        assert np.array_equal(images["t1"], images["t2"])  # one geometry for both dates
        if config.scale == (1.0, 1.0):
            assert np.array_equal(images["t1"][..., 0], labels["m"] * 60)
    exact = PairAugmentConfig(crop=64, scale=(1.0, 1.0), brightness=0, contrast=0, saturation=0)
    images, labels = augment(np.random.default_rng(3), {"t1": image}, {"m": label}, exact)
    assert np.array_equal(images["t1"][..., 0], labels["m"] * 60)


def test_colour_jitter_is_independent_per_date() -> None:
    image = np.full((64, 64, 3), 120, np.uint8)
    image[16:32, 16:48] = (200, 40, 40)
    images, _ = augment(
        np.random.default_rng(1), {"t1": image, "t2": image}, {}, PairAugmentConfig(crop=64)
    )
    assert not np.array_equal(images["t1"], images["t2"])
    red1 = images["t1"][..., 0] > images["t1"][..., 1] + 60
    red2 = images["t2"][..., 0] > images["t2"][..., 1] + 60
    assert red1.sum() == 16 * 32 and np.array_equal(red1, red2)  # same place on both dates


def test_augment_rejects_small_images_and_bad_crops() -> None:
    with pytest.raises(DataError, match="smaller than the 64"):
        augment(
            np.random.default_rng(0),
            {"t1": np.zeros((32, 80, 3), np.uint8)},
            {},
            PairAugmentConfig(crop=64),
        )
    with pytest.raises(ConfigError, match="multiple of 32"):
        PairAugmentConfig(crop=100)


# ---------------------------------------------------------------------------- data


def test_seg_spec_from_taxonomies() -> None:
    binary = SegSpec.from_taxonomy(BINARY_BUILDING)
    assert binary.num_classes == 1
    assert binary.encode(np.array([[0, 1, 255]], np.uint8), (1, 3)).tolist() == [[0, 1, IGNORE]]
    oem = SegSpec.from_taxonomy(OPENEARTHMAP)
    assert oem.num_classes == 9 and oem.lut[8] == 8
    buildings = SegSpec.from_taxonomy(OPENEARTHMAP, object_classes=(8,))
    assert buildings.num_classes == 1 and buildings.lut[8] == 1 and buildings.lut[3] == 0
    loveda = SegSpec.from_taxonomy(LOVEDA)  # ignore id 0, classes 1..7 → targets 0..6
    assert loveda.num_classes == 7 and loveda.lut[0] == IGNORE and loveda.lut[1] == 0
    assert (SegSpec.from_taxonomy(BINARY_BUILDING).encode(None, (2, 2)) == IGNORE).all()
    with pytest.raises(ConfigError, match="object classes"):
        SegSpec.from_taxonomy(OPENEARTHMAP, object_classes=(42,))


def test_train_fraction_subset_is_deterministic() -> None:
    names = [f"img_{i:04d}" for i in range(200)]
    a = subset_indices(names, 0.05, seed=0)
    assert a == subset_indices(names, 0.05, seed=0) and len(a) == 10
    assert a != subset_indices(names, 0.05, seed=1)
    shuffled = list(reversed(names))
    assert {shuffled[i] for i in subset_indices(shuffled, 0.05, 0)} == {names[i] for i in a}
    assert set(a) <= set(subset_indices(names, 0.10, seed=0))  # nested fractions
    assert len(subset_indices(names[:3], 0.05, 0)) == 1  # at least one sample
    assert subset_indices(names, 1.0, 0) == list(range(200))
    with pytest.raises(ConfigError, match="fraction"):
        subset_indices(names, 0.0, 0)


def test_epoch_sampler_ranks_partition_batches_and_resume_skips() -> None:
    one = EpochBatchSampler(20, 4, seed=3)
    one.set_epoch(1)
    full = list(one)
    assert len(full) == 5 and sorted(k for batch in full for k in batch) == list(range(20))
    ranks = [EpochBatchSampler(20, 2, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(1)
    merged = [a + b for a, b in zip(*(list(r) for r in ranks), strict=True)]
    assert merged == full  # the two ranks split every global batch
    one.set_epoch(1, start=3)
    assert list(one) == full[3:]
    one.set_epoch(2)
    assert list(one) != full
    tiny = EpochBatchSampler(3, 8, seed=0)
    (batch,) = list(tiny)
    assert len(batch) == 8 and {k % 3 for k in batch} == {0, 1, 2}


def test_change_dataset_items(worlds: dict[str, Path]) -> None:
    reader = open_dataset(worlds["pairs"])
    seg = SegSpec.from_taxonomy(reader.taxonomy)
    item = ChangePairDataset(reader, seg, PairAugmentConfig(crop=32), seed=0)[3]
    assert item["t1"].shape == (3, 32, 32) and item["t1"].dtype == torch.float32
    assert abs(float(item["t1"].mean())) < 3  # ImageNet-normalised, not 0..255
    assert set(torch.unique(item["change"]).tolist()) <= {0, 1, IGNORE}
    assert item["t1_seg"].max() <= 8  # A_mask/ B_mask/ read as OpenEarthMap targets
    with pytest.raises(ConfigError, match="star or gstar"):
        ChangePairDataset(open_dataset(worlds["scenes"]), seg)
    with pytest.raises(ConfigError, match="supervised"):
        StarPairDataset(reader, seg, PairAugmentConfig(crop=32))


# ---------------------------------------------------------------------------- models and losses


@pytest.mark.parametrize(
    ("backbone", "size", "mode", "seg_classes"),
    [
        ("resnet18", 64, "supervised", 9),
        ("resnet18", 96, "supervised", None),
        ("resnet18", 64, "star", 1),
        ("mit_b1", 64, "gstar", 1),
        ("mit_b1", 96, "supervised", 2),
    ],
)
def test_model_shapes_by_mode(backbone: str, size: int, mode: str, seg_classes: int | None) -> None:
    config = DetectorTrainConfig(model="changestar_1x96", backbone=backbone, mode=mode, steps=1)  # type: ignore[arg-type]
    model = build_model(config, seg_classes).train()
    x = torch.randn(2, 3, size, size)
    out = model(x, x)
    assert out.change.shape == (2, 1, size, size)
    assert (out.change_t2t1 is not None) == (mode != "supervised")  # STAR: both orderings
    if seg_classes is None:
        assert out.t1_semantic is None
    else:
        assert out.t1_semantic.shape == out.t2_semantic.shape == (2, seg_classes, size, size)
    batch = {
        "change": torch.randint(0, 2, (2, size, size), dtype=torch.uint8),
        "t1_seg": torch.randint(0, max(seg_classes or 1, 2), (2, size, size), dtype=torch.uint8),
        "t2_seg": torch.full((2, size, size), IGNORE, dtype=torch.uint8),
    }
    loss, parts = detector_loss(out, batch, config)
    loss.backward()
    assert torch.isfinite(loss) and ("loss_seg" in parts) == (seg_classes is not None)


def test_config_round_trip_and_checks() -> None:
    config = DetectorTrainConfig(
        mode="gstar", object_classes=(8,), aug=PairAugmentConfig(crop=96, scale=(1.0, 1.5)), steps=3
    )
    assert DetectorTrainConfig.from_dict(config.to_dict()) == config
    assert config.use_symmetric and not config.use_dice  # STAR defaults (FACTS §6)
    with pytest.raises(ConfigError, match="mode"):
        DetectorTrainConfig(mode="semi")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown"):
        DetectorTrainConfig.from_dict({"epochs": 2, "warmup": 5})


def test_loss_ignores_ignore_pixels() -> None:
    config = DetectorTrainConfig(steps=1)
    logits = torch.zeros(1, 1, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), IGNORE, dtype=torch.uint8)
    target[0, 0, 0] = 1
    batch = {"change": target, "t1_seg": target, "t2_seg": target}
    loss, _ = detector_loss(ChangeOutput(change=logits), batch, config)
    loss.backward()
    assert logits.grad is not None
    assert int((logits.grad != 0).sum()) == 1  # only the one labelled pixel gets gradient
    batch["change"] = torch.full((1, 4, 4), IGNORE, dtype=torch.uint8)
    empty, _ = detector_loss(ChangeOutput(change=torch.zeros(1, 1, 4, 4)), batch, config)
    assert torch.isfinite(empty)


# ---------------------------------------------------------------------------- metrics


class _ListReader(ChangeReader):
    format = "test"

    def __init__(self, root: Path, samples: list[ChangeSample]) -> None:
        super().__init__(root, BINARY_BUILDING)
        self.samples = samples
        self.names = [s.name for s in samples]

    def __getitem__(self, index: int) -> ChangeSample:
        return self.samples[index]


class _RedMeansChange(nn.Module):
    """Predicts change exactly where the t2 image is pure red."""

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        red = (t2[:, :1] > 2.0) & (t2[:, 1:2] < -1.5)
        return ChangeOutput(change=torch.where(red, 10.0, -10.0))


def _sample(name: str, predicted: np.ndarray, label: np.ndarray) -> ChangeSample:
    t1 = np.full((*label.shape, 3), 90, np.uint8)
    t2 = t1.copy()
    t2[predicted] = (255, 0, 0)
    return ChangeSample(t1, t2, label, name=name)


def test_evaluation_against_hand_counted_confusion(tmp_path: Path) -> None:
    pred = np.zeros((40, 48), bool)
    pred[:10, :10] = True  # 100 predicted
    label = np.zeros((40, 48), np.uint8)
    label[5:15, :10] = 1  # 100 labelled, 50 of them predicted
    label[30:, 40:] = IGNORE  # 80 ignored pixels
    samples = [_sample("a", pred, label), _sample("b", np.zeros_like(pred), np.zeros_like(label))]
    reader = _ListReader(tmp_path, samples)
    result = evaluate_detector(
        _RedMeansChange(), ChangePairDataset(reader, SegSpec.from_taxonomy(BINARY_BUILDING))
    )
    s = result.scores
    total = 2 * 40 * 48 - 80
    assert (s.tp, s.fp, s.fn, s.tn) == (50, 50, 50, total - 150)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(0.5) and s.iou == pytest.approx(50 / 150)
    rows = {r["name"]: r for r in result.per_image}
    assert (rows["a"]["tp"], rows["a"]["fp"], rows["a"]["fn"]) == (50, 50, 50)
    assert rows["b"]["f1"] == 1.0  # no change, none predicted: the 0/0 rule
    assert result.per_image_csv().splitlines()[0] == "name,tp,fp,fn,tn,precision,recall,f1,iou"


def test_all_negative_split(tmp_path: Path) -> None:
    empty = np.zeros((32, 32), bool)
    samples = [_sample(n, empty, np.zeros((32, 32), np.uint8)) for n in "xyz"]
    reader = _ListReader(tmp_path, samples)
    s = evaluate_detector(
        _RedMeansChange(), ChangePairDataset(reader, SegSpec.from_taxonomy(BINARY_BUILDING))
    ).scores
    assert (s.tp, s.fp, s.fn, s.tn) == (0, 0, 0, 3 * 32 * 32)
    assert (s.precision, s.recall, s.f1, s.iou) == (1.0, 1.0, 1.0, 1.0)
    spot = empty.copy()
    spot[0, :4] = True  # predicted change where there is none
    reader.samples[0] = _sample("x", spot, np.zeros((32, 32), np.uint8))
    s = evaluate_detector(
        _RedMeansChange(), ChangePairDataset(reader, SegSpec.from_taxonomy(BINARY_BUILDING))
    ).scores
    assert s.fp == 4 and s.f1 == 0.0 and s.precision == 0.0


# ---------------------------------------------------------------------------- the loop


def test_train_then_eval_end_to_end(worlds: dict[str, Path], tmp_path: Path) -> None:
    config = DetectorTrainConfig(steps=16, run=RunConfig(log_every=4), lr=0.05, **TINY)
    result = train_detector(
        config,
        open_dataset(worlds["pairs"]),
        tmp_path / "run",
        val=open_dataset(worlds["test"]),
    )
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {
        "checkpoints",
        "config.json",
        "metrics.csv",
        "curves.png",
    }
    assert result.step == 16 and result.checkpoint.name == "last"
    losses = [row["loss"] for _, row in result.history if "loss" in row]
    assert losses[-1] < losses[0]
    assert result.val is not None and 0 <= result.val.scores.f1 <= 1
    assert sum("val_f1" in row for _, row in result.history) == 4  # 4 epochs of 4 batches
    model, saved = load_detector(run)
    assert saved["kind"] == "changen_detector" and saved["step"] == 16
    again = evaluate_detector(
        model,
        ChangePairDataset(open_dataset(worlds["test"]), SegSpec.from_taxonomy(OPENEARTHMAP)),
    )
    assert again.scores == result.val.scores
    with pytest.raises(OutputExistsError):
        train_detector(config, open_dataset(worlds["pairs"]), run)


def test_resume_is_exact(worlds: dict[str, Path], tmp_path: Path) -> None:
    every = {"run": RunConfig(devices="auto", save_every=3, keep=5, log_every=4)}
    config = DetectorTrainConfig(steps=6, **every, **TINY)
    data = open_dataset(worlds["pairs"])
    full = tmp_path / "full"
    train_detector(config, data, full)
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == ["last", "step-3", "step-6"]
    for name in ("step-6", "last"):  # as if killed after step 3
        shutil.rmtree(cut / "checkpoints" / name)
    result = train_detector(config, data, cut, resume=True)
    assert result.step == 6
    a = load_file(str(full / "checkpoints/step-6/model.safetensors"))
    b = load_file(str(cut / "checkpoints/step-6/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # rows after 3 dropped and redone; the row at 4 averages steps 1-4 across the crash
    rows = [read_metrics(run / "metrics.csv") for run in (full, cut)]
    assert [s for s, _ in result.history] == [s for s, _ in rows[0]] == [4, 6]
    no_time = [[{k: v for k, v in r.items() if k != "s_per_step"} for _, r in x] for x in rows]
    assert no_time[0] == no_time[1]
    other = DetectorTrainConfig(steps=6, lr=0.1, **every, **TINY)
    with pytest.raises(ConfigError, match="lr"):
        train_detector(other, data, cut, resume=True)
    with pytest.raises(ConfigError, match="resume"):
        train_detector(config, data, tmp_path / "empty", resume=True)


def test_bf16_autocast_and_adamw(worlds: dict[str, Path], tmp_path: Path) -> None:
    config = DetectorTrainConfig(
        steps=2, run=RunConfig(precision="bf16"), optimizer="adamw", lr=1e-3, **TINY
    )
    result = train_detector(config, open_dataset(worlds["pairs"]), tmp_path / "run")
    weights = load_file(str(result.checkpoint / "model.safetensors"))
    floats = [w for w in weights.values() if w.is_floating_point()]
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in floats)
    model, _ = load_detector(result.checkpoint)
    reader = open_dataset(worlds["test"])
    dataset = ChangePairDataset(reader, SegSpec.from_taxonomy(reader.taxonomy))
    scores = evaluate_detector(model, dataset, precision="bf16").scores
    assert scores.tp + scores.fp + scores.fn + scores.tn == 4 * 64 * 64


def test_star_and_finetune(worlds: dict[str, Path], tmp_path: Path) -> None:
    star = DetectorTrainConfig(
        model="changestar_1x96",
        backbone="resnet18",
        mode="gstar",
        steps=2,
        batch_size=2,
        aug=PairAugmentConfig(crop=64),
        object_classes=(8,),
    )
    pre = train_detector(star, open_dataset(worlds["scenes"]), tmp_path / "pre")
    _, saved = load_detector(pre.checkpoint)
    assert saved["model_config"]["num_semantic_classes"] == 1
    assert saved["model_config"]["symmetric"] is True
    tune = DetectorTrainConfig(
        model="changestar_1x96",
        backbone="resnet18",
        steps=1,
        batch_size=2,
        semantic=False,
        aug=PairAugmentConfig(crop=64),
        train_fraction=0.25,
    )
    result = train_detector(
        tune, open_dataset(worlds["pairs"]), tmp_path / "ft", init=pre.checkpoint
    )
    tuned = load_file(str(result.checkpoint / "model.safetensors"))
    start = load_file(str(pre.checkpoint / "model.safetensors"))
    assert "semantic_head.weight" not in tuned
    key = "encoder.backbone.body.conv1.weight"
    assert not torch.equal(tuned[key], start[key])  # trained on from the pre-trained weights
    moved = (tuned[key] - start[key]).abs().max()
    assert moved < (start[key].abs().max())  # ... and not re-initialised
    bad = DetectorTrainConfig(steps=1, **TINY)
    with pytest.raises(ConfigError, match="do not fit"):
        train_detector(bad, open_dataset(worlds["pairs"]), tmp_path / "bad", init=pre.checkpoint)


@pytest.mark.real
def test_train_and_eval_on_real_levircd_crops(real_root: Path, tmp_path: Path) -> None:
    crops = real_root / "levircd_crops"
    if not crops.is_dir():
        pytest.skip("levircd_crops not in the real samples")
    reader = open_dataset(crops, format="levircd")
    config = DetectorTrainConfig(
        model="fc_siam_diff", steps=2, batch_size=2, aug=PairAugmentConfig(crop=128)
    )
    result = train_detector(config, reader, tmp_path / "run", val=reader)
    assert result.val is not None and len(result.val.per_image) == len(reader) == 11
    s = result.val.scores
    assert s.tp + s.fn > 0  # LEVIR-CD's 0/255 labels were read as change, not ignore
    assert s.tp + s.fp + s.fn + s.tn == 11 * 256 * 256
    for value in (s.precision, s.recall, s.f1, s.iou):
        assert 0.0 <= value <= 1.0


def test_segmentation_mode_trains_the_semantic_head_only(
    worlds: dict[str, Path], tmp_path: Path
) -> None:
    """Segmentation pre-training (Changen Table 6): the change head keeps its initial weights,
    the encoder and semantic head learn; a detector without a semantic head is refused."""
    config = DetectorTrainConfig(
        model="changestar_1x96",
        backbone="resnet18",
        mode="segmentation",
        steps=2,
        batch_size=2,
        aug=PairAugmentConfig(crop=64),
        object_classes=(8,),
        run=RunConfig(save_every=1, keep=2),
    )
    result = train_detector(config, open_dataset(worlds["scenes"]), tmp_path / "seg")
    history = [metrics for _, metrics in result.history]
    assert all("loss_seg" in m and "loss_change" not in m for m in history)
    first = load_file(str(tmp_path / "seg/checkpoints/step-1/model.safetensors"))
    last = load_file(str(result.checkpoint / "model.safetensors"))
    stats = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm moves in forward
    change = [k for k in last if k.startswith("mixin.") and not k.endswith(stats)]
    assert change and all(torch.equal(first[k], last[k]) for k in change)
    assert not torch.equal(first["semantic_head.weight"], last["semantic_head.weight"])
    with pytest.raises(ConfigError, match="mode segmentation trains a semantic head"):
        DetectorTrainConfig(mode="segmentation", steps=1, **TINY)
