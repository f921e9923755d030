"""The comparison detectors (SNUNet-CD, BiT, ChangerEx, ChangeFormer, LightCDNet; ChangeStar
with R-50 / ResNeXt-101): shapes, parameter counts, a few training steps, `detect info`, and
backbone weights from a local file (``--backbone-weights``, recipes)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner, Result

from changen.cli.detect import app as detect_app
from changen.detectors import ChangeStar, build_backbone, build_detector, load_pretrained
from changen.detectors.train import DetectorTrainConfig, detector_loss, recipe_settings
from changen.errors import ConfigError, DataError

NEW = ("snunet", "bit", "changer", "changeformer", "lightcdnet")


def _pair(size: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 3, size, size, generator=g),
        torch.randn(batch, 3, size, size, generator=g),
    )


@functools.cache
def _model(name: str) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_detector(name)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("size", [64, 96])
@pytest.mark.parametrize("batch", [1, 2])
def test_output_shapes(name: str, size: int, batch: int, one_thread: None) -> None:
    model = _model(name).eval()
    with torch.no_grad():
        out = model(*_pair(size, batch))
    assert out.change.shape == (batch, 1, size, size)
    assert out.change_t2t1 is None and out.t1_semantic is None and out.aux is None
    assert torch.isfinite(out.change).all()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("snunet", 12_034_849),  # paper: 12.03 M (SNUNet-CD/32; its 2-logit head has +129)
        ("bit", 2_989_605),  # Open-CD bit_r18 (embed 64); the authors' dd8 (dim_head 64) ~3.5 M
        ("changer", 11_390_817),  # paper: 11.39 M (ChangerEx R-18)
        ("changeformer", 13_940_673),  # Open-CD MiT-B1 variant; the authors' V6 (MiT-B2*) 41.0 M
        ("lightcdnet", 347_697),  # paper / Open-CD: 0.35 M (small)
    ],
)
def test_parameter_counts(name: str, expected: int) -> None:
    assert _params(_model(name)) == expected


@pytest.mark.parametrize(
    ("backbone", "expected"),
    # Changen Table 6 lists the original ChangeStar: R-50 33.9 M, RX-101 52.5 M; 1×96 is lighter
    [("resnet50", 31_043_233), ("resnext101_32x4d", 49_663_905)],
)
def test_changestar_1x96_with_large_backbones(backbone: str, expected: int) -> None:
    with torch.device("meta"):
        model = ChangeStar(backbone)
    assert _params(model) == expected
    assert model.encoder.backbone.out_channels == (256, 512, 1024, 2048)


def test_lightcdnet_variants_match_the_paper() -> None:
    counts = {v: _params(build_detector("lightcdnet", variant=v)) for v in ("base", "large")}
    assert counts == {"base": 1_318_359, "large": 2_820_945}  # paper: 1.32 M, 2.82 M
    with pytest.raises(ConfigError, match="variant"):
        build_detector("lightcdnet", variant="huge")


def _toy_batch() -> dict[str, torch.Tensor]:
    """Two 64² pairs whose change is a bright square pasted into t2."""
    t1, t2 = _pair(64, 2, seed=3)
    change = torch.zeros(2, 64, 64, dtype=torch.uint8)
    change[0, 8:40, 16:48] = 1
    change[1, 32:60, 4:30] = 1
    t2 = torch.where(change[:, None].bool(), torch.full_like(t2, 2.5), t2)
    return {"t1": t1, "t2": t2, "change": change}


@pytest.mark.parametrize("name", NEW)
def test_a_few_training_steps_lower_the_loss(name: str, one_thread: None) -> None:
    torch.manual_seed(0)
    small = {"base_channels": 16} if name == "snunet" else {}  # a quicker SNUNet
    model = build_detector(name, **small).train()
    config = DetectorTrainConfig(model=name, dice=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = _toy_batch()
    losses = []
    for _ in range(6):
        out = model(batch["t1"], batch["t2"])
        loss, parts = detector_loss(out, batch, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert ("loss_aux" in parts) == (name == "lightcdnet")  # LightCDNet's deep supervision
    assert sum(losses[-2:]) / 2 < 0.8 * losses[0], losses


def test_own_encoder_detectors_take_no_backbone() -> None:
    for name in ("snunet", "lightcdnet"):
        with pytest.raises(ConfigError, match="own encoder"):
            build_detector(name, backbone="resnet18")
    with pytest.raises(ConfigError, match="not a ResNet"):
        build_detector("changer", backbone="mit_b1")


def test_lightcdnet_refuses_to_train_on_single_pairs() -> None:
    model = build_detector("lightcdnet").train()
    with pytest.raises(DataError, match="at least 2 pairs"):
        model(*_pair(64, 1))


def _invoke(*args: str | Path) -> Result:
    root = typer.Typer()
    root.add_typer(detect_app, name="detect")
    return CliRunner().invoke(root, ["detect", *map(str, args)])


def test_detect_info_lists_every_detector(one_thread: None) -> None:
    result = _invoke("info", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.output)}
    assert set(NEW) <= set(rows)
    assert rows["changer"] == {"model": "changer", "backbone": "resnet18_v1c", "params": 11_390_817}
    assert rows["snunet"]["backbone"] is None
    one = _invoke("info", "--model", "SNUNet-CD", "--no-flops", "--json")
    assert json.loads(one.output)["params"] == 12_034_849


def _imagenet_like(backbone: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """A generated classification checkpoint of ``backbone``: its tensors, random, plus fc."""
    g = torch.Generator().manual_seed(1)
    body = build_backbone(backbone).body.state_dict()
    state = {
        prefix + k: (torch.rand(v.shape, generator=g) if v.is_floating_point() else v)
        for k, v in body.items()
    }
    state[prefix + "fc.weight"] = torch.zeros(1000, 8)
    return state


def test_backbone_weights_load_with_prefixes_and_mmcv_stem_names(tmp_path: Path) -> None:
    state = _imagenet_like("resnet18_v1c", prefix="module.backbone.")
    save_file(state, str(tmp_path / "v1c.safetensors"))
    model = build_detector("bit")
    loaded = load_pretrained(model, tmp_path / "v1c.safetensors")
    own = model.backbone.body.state_dict()
    assert loaded == len(own)  # layer4 of the file is not in BiT's truncated backbone
    assert torch.equal(own["layer3.0.conv1.weight"], state["module.backbone.layer3.0.conv1.weight"])
    renames = {"module.backbone.conv1.": "stem.", "module.backbone.bn1.": "stem.7."}
    mmcv = {functools.reduce(lambda k, r: k.replace(*r), renames.items(), k): v
            for k, v in state.items()}  # fmt: skip
    torch.save(mmcv, tmp_path / "mmcv.pth")
    changer = build_detector("changer")
    assert load_pretrained(changer, tmp_path / "mmcv.pth") == len(
        changer.backbone.body.state_dict()
    )
    assert torch.equal(changer.backbone.body.bn1.weight, state["module.backbone.bn1.weight"])


def test_backbone_weights_that_do_not_fit_are_one_line_errors(tmp_path: Path) -> None:
    save_file(_imagenet_like("resnet50"), str(tmp_path / "r50.safetensors"))
    with pytest.raises(ConfigError, match=r"r50\.safetensors do not fit this backbone") as err:
        load_pretrained(
            build_detector("changer", backbone="resnet18"), tmp_path / "r50.safetensors"
        )
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="own encoder"):
        load_pretrained(build_detector("lightcdnet"), tmp_path / "r50.safetensors")


def test_recipe_fills_what_flags_leave_open() -> None:
    settings = recipe_settings("changeanywhere", {"lr": None, "batch_size": 4, "mode": "star"})
    assert settings["lr"] == 1e-3 and settings["weight_decay"] == 0.05
    assert settings["batch_size"] == 4 and settings["mode"] == "star" and settings["dice"] is False
    assert recipe_settings("changeanywhere_finetune", {})["epochs"] == 50
    with pytest.raises(ConfigError, match="unknown recipe"):
        recipe_settings("nope", {})


def test_cli_train_records_backbone_weights_and_recipe(
    worlds: dict[str, Path], tmp_path: Path, one_thread: None
) -> None:
    save_file(_imagenet_like("resnet18"), str(tmp_path / "r18.safetensors"))
    out = tmp_path / "run"
    common = ["--model", "bit", "--backbone", "resnet18", "--steps", "2", "--crop", "64"]
    result = _invoke(
        "train", worlds["pairs"], "--out", out, *common, "--batch-size", "2",
        "--backbone-weights", tmp_path / "r18.safetensors", "--recipe", "changeanywhere",
        "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert "loaded 90 backbone tensors" in result.output  # stem + layers 1-3, buffers too
    record = json.loads((out / "config.json").read_text())
    assert record["backbone_weights"] == {"file": str(tmp_path / "r18.safetensors"), "tensors": 90}
    train = record["train"]
    assert train["recipe"] == "changeanywhere" and train["optimizer"] == "adamw"
    assert (train["lr"], train["weight_decay"], train["dice"]) == (1e-3, 0.05, False)
    assert train["batch_size"] == 2  # the flag wins over the recipe's 8
    bad = tmp_path / "bad"
    save_file(_imagenet_like("resnet50"), str(tmp_path / "r50.safetensors"))
    failed = _invoke(
        "train", worlds["pairs"], "--out", bad, *common,
        "--backbone-weights", tmp_path / "r50.safetensors", "--no-progress",
    )  # fmt: skip
    assert isinstance(failed.exception, ConfigError), failed.output
    assert "r50.safetensors do not fit" in str(failed.exception)
    assert not bad.exists()  # a run that fails before its first checkpoint leaves nothing


def test_mit_weights_load_into_changeformer_from_an_smp_model_file(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(2)
    body = build_backbone("mit_b1").body.state_dict()
    state = {"encoder." + k: torch.rand(v.shape, generator=g) for k, v in body.items()}
    state["decoder.head.weight"] = torch.zeros(2, 2)  # an smp model's decoder: not wanted
    save_file(state, str(tmp_path / "segformer.safetensors"))
    model = build_detector("changeformer")
    assert load_pretrained(model, tmp_path / "segformer.safetensors") == len(body)
    loaded = model.backbone.body.state_dict()["patch_embed1.proj.weight"]
    assert torch.equal(loaded, state["encoder.patch_embed1.proj.weight"])
