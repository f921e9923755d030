"""Change detectors: output shapes, temporal symmetry, parameter counts, builders, weights."""

from __future__ import annotations

import functools

import pytest
import torch
from safetensors.torch import save_file

from changen.detectors import MODELS, ChangeStar, build_backbone, build_detector
from changen.errors import ConfigError, DataError


def _pair(size: int, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 3, size, size, generator=g),
        torch.randn(batch, 3, size, size, generator=g),
    )


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.cache
def _changestar(backbone: str, symmetric: bool, classes: int | None) -> ChangeStar:
    torch.manual_seed(0)
    return ChangeStar(backbone, symmetric=symmetric, num_semantic_classes=classes)


@pytest.mark.parametrize(
    ("backbone", "symmetric", "classes"),
    [
        ("resnet18", False, None),
        ("resnet18", True, None),
        ("resnet18", False, 3),
        ("resnet18", True, 1),
        ("mit_b1", False, None),
        ("mit_b1", True, 3),
    ],
)
def test_changestar_output_shapes(backbone: str, symmetric: bool, classes: int | None) -> None:
    model = _changestar(backbone, symmetric, classes).train()
    out = model(*_pair(64, batch=1))
    assert out.change.shape == (1, 1, 64, 64)
    if symmetric:
        assert out.change_t2t1 is not None and out.change_t2t1.shape == (1, 1, 64, 64)
    else:
        assert out.change_t2t1 is None
    if classes is None:
        assert out.t1_semantic is None and out.t2_semantic is None
    else:
        assert out.t1_semantic.shape == (1, classes, 64, 64)
        assert out.t2_semantic.shape == (1, classes, 64, 64)
    model.eval()
    for size in (64, 128) if backbone == "resnet18" else (64,):
        with torch.no_grad():
            out = model(*_pair(size, batch=1))
        assert out.change.shape == (1, 1, size, size)
        assert out.change_t2t1 is None
        if classes is not None:
            assert out.t1_semantic.shape == (1, classes, size, size)


def test_changestar_128_with_mit_b1() -> None:
    model = _changestar("mit_b1", False, None).eval()
    with torch.no_grad():
        out = model(*_pair(128, batch=1))
    assert out.change.shape == (1, 1, 128, 128)


def test_symmetric_model_is_invariant_to_swapping_dates_in_eval() -> None:
    t1, t2 = _pair(64)
    sym = _changestar("resnet18", True, None).eval()
    plain = _changestar("resnet18", False, None).eval()
    with torch.no_grad():
        forward, backward = sym(t1, t2).change, sym(t2, t1).change
        assert torch.allclose(forward, backward, atol=1e-5)
        assert not torch.allclose(plain(t1, t2).change, plain(t2, t1).change, atol=1e-5)


def test_symmetric_mixin_returns_both_orderings_in_training_and_their_mean_in_eval() -> None:
    mixin = _changestar("resnet18", True, None).mixin
    g = torch.Generator().manual_seed(1)
    f1, f2 = torch.randn(2, 96, 16, 16, generator=g), torch.randn(2, 96, 16, 16, generator=g)
    with torch.no_grad():
        mixin.train()
        fwd, bwd = mixin(f1, f2)
        swapped_fwd, swapped_bwd = mixin(f2, f1)
        mixin.eval()
        mean, none = mixin(f1, f2)
        one = mixin.score(torch.cat([f1, f2], dim=1))
        two = mixin.score(torch.cat([f2, f1], dim=1))
    assert fwd.shape == bwd.shape == (2, 1, 64, 64)
    assert torch.allclose(bwd, swapped_fwd, atol=1e-5)
    assert torch.allclose(fwd, swapped_bwd, atol=1e-5)
    assert not torch.allclose(fwd, bwd, atol=1e-3)
    assert none is None
    assert torch.allclose(mean, (one + two) / 2, atol=1e-6)


@pytest.mark.parametrize(("backbone", "expected"), [("resnet18", 16.4e6), ("mit_b1", 18.4e6)])
def test_changestar_1x96_parameter_count(backbone: str, expected: float) -> None:
    n = _num_params(_changestar(backbone, False, None))
    assert abs(n - expected) / expected < 0.02, n


def test_original_changemixin_option_has_four_layers_of_16() -> None:
    model = build_detector("changestar_4x16")
    convs = [m for m in model.mixin.layers.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 16, 16]
    assert convs[0].in_channels == 192
    assert model.mixin.classifier.in_channels == 16


@pytest.mark.parametrize(
    ("name", "expected"),
    [("fc_ef", 1.35e6), ("fc_siam_conc", 1.55e6), ("fc_siam_diff", 1.35e6)],
)
def test_fc_baseline_parameter_counts(name: str, expected: float) -> None:
    n = _num_params(build_detector(name))
    assert abs(n - expected) / expected < 0.02, n


@pytest.mark.parametrize("name", ["fc_ef", "fc_siam_conc", "fc_siam_diff", "unet_ef"])
@pytest.mark.parametrize("size", [64, 128])
def test_baseline_output_shapes(name: str, size: int) -> None:
    model = build_detector(name).eval()
    with torch.no_grad():
        out = model(*_pair(size))
    assert out.change.shape == (2, 1, size, size)
    assert out.t1_semantic is None and out.change_t2t1 is None


@pytest.mark.parametrize("name", ["fc_ef", "fc_siam_conc", "fc_siam_diff"])
def test_baselines_use_both_dates(name: str) -> None:
    model = build_detector(name).eval()
    t1, t2 = (t.requires_grad_() for t in _pair(64))
    model(t1, t2).change.sum().backward()
    assert t1.grad.abs().sum() > 0
    assert t2.grad.abs().sum() > 0


def test_all_parameters_receive_gradients() -> None:
    model = _changestar("resnet18", True, 1).train()
    model.zero_grad(set_to_none=True)
    out = model(*_pair(64))
    loss = out.change.mean() + out.change_t2t1.mean() + out.t1_semantic.mean()
    loss = loss + out.t2_semantic.mean()
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    model.zero_grad(set_to_none=True)
    assert unused == []


def test_bad_inputs_raise_data_error() -> None:
    model = build_detector("fc_ef")
    with pytest.raises(DataError, match="divisible by 16"):
        model(*_pair(40))
    star = _changestar("resnet18", False, None)
    with pytest.raises(DataError, match="divisible by 32"):
        star(*_pair(48))
    with pytest.raises(DataError, match="one shape"):
        star(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 32, 32))


def test_builder_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown detector"):
        build_detector("nope")
    with pytest.raises(ConfigError, match="unknown backbone"):
        build_detector("changestar_1x96", backbone="vgg11")
    with pytest.raises(ConfigError, match="own encoder"):
        build_detector("fc_ef", backbone="resnet18")


def test_models_rebuild_from_their_config() -> None:
    for name in MODELS:
        model = build_detector(name)
        again = build_detector(name, **model.config)
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        assert shapes == {k: v.shape for k, v in again.state_dict().items()}
    model = build_detector("changestar_1x96", symmetric=True, num_semantic_classes=4)
    assert build_detector("changestar_1x96", **model.config).config == model.config


def test_backbone_weights_load_from_local_files(tmp_path) -> None:
    source = build_backbone("resnet18")
    body = source.body.state_dict()
    state = {k: torch.rand_like(v.float()).to(v.dtype) for k, v in body.items()}
    state["fc.weight"] = torch.zeros(1000, 512)  # a classification checkpoint's head is dropped
    torch.save({"state_dict": state}, tmp_path / "r18.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "r18.safetensors"))
    for name in ("r18.pth", "r18.safetensors"):
        loaded = build_backbone("resnet18", weights=tmp_path / name)
        for key, value in loaded.body.state_dict().items():
            assert torch.equal(value, state[key]), key
    model = ChangeStar("resnet18", weights=tmp_path / "r18.pth")
    assert torch.equal(model.encoder.backbone.body.conv1.weight, state["conv1.weight"])


def test_backbone_weights_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        build_backbone("resnet18", weights=tmp_path / "missing.pth")
    state = build_backbone("resnet18").body.state_dict()
    torch.save({k: v for k, v in state.items() if k != "conv1.weight"}, tmp_path / "part.pth")
    with pytest.raises(ConfigError, match="do not fit"):
        build_backbone("resnet18", weights=tmp_path / "part.pth")
    state["conv1.weight"] = torch.zeros(64, 6, 7, 7)
    torch.save(state, tmp_path / "wide.pth")
    with pytest.raises(ConfigError, match="do not fit"):
        build_backbone("resnet18", weights=tmp_path / "wide.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable"):
        build_backbone("resnet18", weights=tmp_path / "junk.pth")
