"""Official ChangeStar (1×96) checkpoint conversion.

The official key layout is written out here from the release's model definition
(Z-Zheng/Changen ``changestar_1x96.py`` + ``mit.py`` on the ``ever`` modules ResNetEncoder,
FPN, FSRelation, AssymetricDecoder, ConvBlock, ConvUpsampling), independently of our modules.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from changen.detectors import ChangeStar, load_official_changestar
from changen.errors import ConfigError, FormatError

Layout = list[tuple[str, tuple[int, ...]]]


def _bn(prefix: str, c: int) -> Layout:
    return [
        (f"{prefix}.weight", (c,)),
        (f"{prefix}.bias", (c,)),
        (f"{prefix}.running_mean", (c,)),
        (f"{prefix}.running_var", (c,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def _ln(prefix: str, c: int) -> Layout:
    return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,))]


def _linear(prefix: str, out: int, inp: int) -> Layout:
    return [(f"{prefix}.weight", (out, inp)), (f"{prefix}.bias", (out,))]


def resnet18_layout(prefix: str) -> Layout:
    """torchvision-style ResNet-18 without ``fc`` (``ever`` pops it)."""
    keys = [(f"{prefix}.conv1.weight", (64, 3, 7, 7)), *_bn(f"{prefix}.bn1", 64)]
    c_in = 64
    for layer, c in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"{prefix}.layer{layer}.{block}"
            first_in = c_in if block == 0 else c
            keys += [(f"{p}.conv1.weight", (c, first_in, 3, 3)), *_bn(f"{p}.bn1", c)]
            keys += [(f"{p}.conv2.weight", (c, c, 3, 3)), *_bn(f"{p}.bn2", c)]
            if block == 0 and layer > 1:
                keys += [
                    (f"{p}.downsample.0.weight", (c, c_in, 1, 1)),
                    *_bn(f"{p}.downsample.1", c),
                ]
        c_in = c
    return keys


def mit_b1_layout(prefix: str) -> Layout:
    """SegFormer MiT-B1 (embed 64/128/320/512, depths 2/2/2/2, sr 8/4/2/1, mlp ratio 4)."""
    keys: Layout = []
    c_in = 3
    for stage, (d, sr) in enumerate(zip((64, 128, 320, 512), (8, 4, 2, 1), strict=True), start=1):
        k = 7 if stage == 1 else 3
        keys += [
            (f"{prefix}.patch_embed{stage}.proj.weight", (d, c_in, k, k)),
            (f"{prefix}.patch_embed{stage}.proj.bias", (d,)),
            *_ln(f"{prefix}.patch_embed{stage}.norm", d),
        ]
        for j in range(2):
            p = f"{prefix}.block{stage}.{j}"
            keys += _ln(f"{p}.norm1", d)
            keys += _linear(f"{p}.attn.q", d, d) + _linear(f"{p}.attn.kv", 2 * d, d)
            keys += _linear(f"{p}.attn.proj", d, d)
            if sr > 1:
                keys += [(f"{p}.attn.sr.weight", (d, d, sr, sr)), (f"{p}.attn.sr.bias", (d,))]
                keys += _ln(f"{p}.attn.norm", d)
            keys += _ln(f"{p}.norm2", d) + _linear(f"{p}.mlp.fc1", 4 * d, d)
            keys += [
                (f"{p}.mlp.dwconv.dwconv.weight", (4 * d, 1, 3, 3)),
                (f"{p}.mlp.dwconv.dwconv.bias", (4 * d,)),
            ]
            keys += _linear(f"{p}.mlp.fc2", d, 4 * d)
        keys += _ln(f"{prefix}.norm{stage}", d)
        c_in = d
    return keys


def head_layout(encoder_channels: tuple[int, ...]) -> Layout:
    """FPN(256) + FSRelation(scale-aware) + AssymetricDecoder(96) + ChangeMixinBiSupN1 + head."""
    keys: Layout = []
    for i, c in enumerate(encoder_channels, start=1):
        keys += [(f"encoder.fpn.fpn_inner{i}.0.weight", (256, c, 1, 1))]
        keys += [(f"encoder.fpn.fpn_layer{i}.0.weight", (256, 256, 3, 3))]
    for i in range(4):
        p = f"encoder.fsr.scene_encoder.{i}"
        keys += [(f"{p}.0.weight", (256, encoder_channels[-1], 1, 1)), (f"{p}.0.bias", (256,))]
        keys += [(f"{p}.2.weight", (256, 256, 1, 1)), (f"{p}.2.bias", (256,))]
        for name in ("content_encoders", "feature_reencoders"):
            p = f"encoder.fsr.{name}.{i}"
            keys += [(f"{p}.0.weight", (256, 256, 1, 1)), (f"{p}.0.bias", (256,))]
            keys += _bn(f"{p}.1", 256)
    for level, blocks in enumerate((1, 1, 2, 3)):
        for b in range(blocks):
            p = f"encoder.dec.blocks.{level}.{b}"
            keys += [(f"{p}.0.weight", (96, 256 if b == 0 else 96, 3, 3)), *_bn(f"{p}.1", 96)]
    keys += [("decoder.conv.0.weight", (96, 192, 3, 3)), *_bn("decoder.conv.1", 96)]
    keys += [("head.change_conv.0.weight", (1, 96, 1, 1)), ("head.change_conv.0.bias", (1,))]
    return keys


def official_state(layout: Layout, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


R18_LAYOUT = resnet18_layout("encoder.resnet") + head_layout((64, 128, 256, 512))
MIT_LAYOUT = mit_b1_layout("encoder.features") + head_layout((64, 128, 320, 512))


def test_layout_matches_the_release_parameter_count() -> None:
    n = sum(torch.Size(s).numel() for k, s in R18_LAYOUT if "running" not in k and "num_b" not in k)
    assert n == 16_401_569  # the paper's 16.4M


@pytest.mark.parametrize(
    ("backbone", "layout"), [("resnet18", R18_LAYOUT), ("mit_b1", MIT_LAYOUT)], ids=["r18", "mitb1"]
)
def test_every_tensor_of_our_model_is_set_from_the_official_layout(backbone, layout) -> None:
    official = official_state(layout)
    model = ChangeStar(backbone)
    with torch.no_grad():
        for t in model.state_dict().values():
            t.fill_(-7 if t.is_floating_point() else 0)
    # hub checkpoints wrap the weights under "model" with a DataParallel prefix
    load_official_changestar({"model": {f"module.{k}": v for k, v in official.items()}}, model)
    ours = model.state_dict()
    assert len(ours) == len(official)
    official_values = sorted(float(v.double().sum()) for v in official.values())
    our_values = sorted(float(v.double().sum()) for v in ours.values())
    assert our_values == official_values
    picks = {
        "encoder.fpn.lateral.0.weight": "encoder.fpn.fpn_inner1.0.weight",
        "encoder.fpn.output.3.weight": "encoder.fpn.fpn_layer4.0.weight",
        "encoder.relation.scene.2.2.bias": "encoder.fsr.scene_encoder.2.2.bias",
        "encoder.relation.reencode.1.1.bias": "encoder.fsr.feature_reencoders.1.1.bias",
        "encoder.decoder.levels.3.2.0.weight": "encoder.dec.blocks.3.2.0.weight",
        "mixin.layers.0.1.running_mean": "decoder.conv.1.running_mean",
        "mixin.classifier.bias": "head.change_conv.0.bias",
    }
    if backbone == "resnet18":
        picks["encoder.backbone.body.layer4.1.bn2.weight"] = "encoder.resnet.layer4.1.bn2.weight"
    else:
        picks["encoder.backbone.body.block3.1.attn.sr.weight"] = (
            "encoder.features.block3.1.attn.sr.weight"
        )
    for our_key, official_key in picks.items():
        assert torch.equal(ours[our_key], official[official_key]), our_key


def test_converted_head_computes_what_the_official_head_computes() -> None:
    official = official_state(R18_LAYOUT, seed=1)
    model = load_official_changestar(official, ChangeStar("resnet18")).eval()
    g = torch.Generator().manual_seed(2)
    t1, t2 = torch.randn(1, 3, 64, 64, generator=g), torch.randn(1, 3, 64, 64, generator=g)
    captured = {}
    model.encoder.backbone.register_forward_hook(lambda m, i, o: captured.update(c5=o[-1]))
    model.encoder.register_forward_hook(lambda m, i, o: captured.update(features=o))
    model.encoder.fpn.register_forward_hook(lambda m, i, o: captured.update(p5=o[-1]))
    with torch.no_grad():
        change = model(t1, t2).change
        # FPN top level: 3x3(1x1(C5)), no bias
        p5 = F.conv2d(
            F.conv2d(captured["c5"], official["encoder.fpn.fpn_inner4.0.weight"]),
            official["encoder.fpn.fpn_layer4.0.weight"],
            padding=1,
        )
        assert torch.allclose(captured["p5"], p5, atol=1e-5)
        # ChangeMixinBiSupN1 + ConvUpsampleHead on the t1/t2 features
        f1, f2 = captured["features"].chunk(2)
        z = F.conv2d(torch.cat([f1, f2], dim=1), official["decoder.conv.0.weight"], padding=1)
        z = F.batch_norm(
            z,
            official["decoder.conv.1.running_mean"],
            official["decoder.conv.1.running_var"],
            official["decoder.conv.1.weight"],
            official["decoder.conv.1.bias"],
        ).relu()
        z = F.conv2d(z, official["head.change_conv.0.weight"], official["head.change_conv.0.bias"])
        expected = F.interpolate(z, scale_factor=4.0, mode="bilinear", align_corners=True)
    assert torch.allclose(change, expected, atol=1e-5)


def test_official_checkpoint_file_loads(tmp_path) -> None:
    official = official_state(R18_LAYOUT)
    torch.save({"model": official, "global_step": 40000}, tmp_path / "cstar.pth")
    model = load_official_changestar(tmp_path / "cstar.pth", ChangeStar("resnet18"))
    assert torch.equal(model.mixin.classifier.weight, official["head.change_conv.0.weight"])


def test_mismatched_checkpoints_raise_format_error() -> None:
    official = official_state(R18_LAYOUT)
    with pytest.raises(FormatError, match="does not fit"):
        load_official_changestar(official, ChangeStar("resnet18", num_semantic_classes=2))
    with pytest.raises(FormatError, match="shape"):
        load_official_changestar(official, ChangeStar("resnet18", mixin_channels=64))
    with pytest.raises(FormatError, match="not in the known layout"):
        load_official_changestar({**official, "aux.weight": torch.zeros(1)}, ChangeStar("resnet18"))


def test_official_safetensors_loads_and_bad_files_are_config_errors(tmp_path) -> None:
    from safetensors.torch import save_file

    official = official_state(R18_LAYOUT)
    save_file(official, tmp_path / "cstar.safetensors")
    model = load_official_changestar(tmp_path / "cstar.safetensors", ChangeStar("resnet18"))
    assert torch.equal(model.mixin.classifier.weight, official["head.change_conv.0.weight"])
    torch.save({"model": {"step": 3}}, tmp_path / "values.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x80\x04junk")
    for name, match in [
        ("values.pth", "holds no plain state dict of tensors"),
        ("junk.pth", "not a readable weights file, or refused"),
        ("missing.pth", "not found"),
    ]:
        with pytest.raises(ConfigError, match=match) as error:
            load_official_changestar(tmp_path / name, ChangeStar("resnet18"))
        assert str(tmp_path / name) in str(error.value) and "\n" not in str(error.value)
