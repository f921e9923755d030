"""RS-DiT: shapes, adaLN-Zero, per-token conditioning, masked window padding, and equivalence
with torchange 0.0.4's released network through the weight converter."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from changen.errors import ConfigError, FormatError
from changen.synthesis.diffusion.official import (
    convert_state_dict,
    infer_config,
    load_official_rsdit,
)
from changen.synthesis.diffusion.rsdit import (
    PRESETS,
    Attention,
    RSDiT,
    Windows,
    parameter_count,
    preset_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def jitter(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Perturb every parameter (the zero-initialised layers too) so outputs are informative."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


@pytest.mark.parametrize("preset", ["tiny", "small"])
@pytest.mark.parametrize("latent", [16, 20, 34])
@pytest.mark.parametrize("label_channels", [1, 5])
def test_output_shape_over_presets_sizes_and_labels(
    preset: str, latent: int, label_channels: int
) -> None:
    model = RSDiT(preset_config(preset, label_channels=label_channels, in_channels=3))
    x = torch.randn(2, 3, latent, latent + 2)
    labels = torch.rand(2, label_channels, latent * 2, (latent + 2) * 2)
    out = model(x, torch.tensor([3, 900]), labels)
    assert out.shape == (2, 6, latent, latent + 2)


def test_zero_output_at_initialisation() -> None:
    model = RSDiT(preset_config("tiny"))
    out = model(torch.randn(2, 4, 16, 16), torch.tensor([10, 20]), torch.rand(2, 1, 32, 32))
    assert torch.count_nonzero(out) == 0


def test_presets_have_the_papers_parameter_counts() -> None:
    expected = {"S/2": 35_284_784, "B/2": 140_422_208, "L/2": 476_439_968, "XL/2": 698_558_288}
    with torch.device("meta"):
        counts = {name: parameter_count(RSDiT(preset_config(name))) for name in expected}
    assert counts == expected


def test_conditioning_is_per_token() -> None:
    """A label change in one corner moves the output mostly in that corner's window."""
    model = jitter(RSDiT(preset_config("tiny", global_every=99)))
    x, t = torch.randn(1, 4, 32, 32), torch.tensor([400])
    labels = torch.zeros(1, 1, 64, 64)
    changed = labels.clone()
    changed[..., :16, :16] = 1.0
    with torch.no_grad():
        delta = (model(x, t, changed) - model(x, t, labels)).abs().mean(dim=1)[0]
    near, far = delta[:16, :16].mean(), delta[16:, 16:].mean()
    assert near > 10 * far


def test_padded_window_keys_are_masked() -> None:
    """On a 12×12 grid with 8×8 windows, each window attends to its real tokens only."""
    torch.manual_seed(0)
    attn = Attention(8, 2).eval()
    tokens = torch.randn(1, 144, 8)
    windows = Windows((12, 12), 8, tokens.device)
    with torch.no_grad():
        out = windows.merge(attn(windows.partition(tokens), windows.key_masks(1)), 1)
        grid = tokens.view(1, 12, 12, 8)
        for rows in (slice(0, 8), slice(8, 12)):
            for cols in (slice(0, 8), slice(8, 12)):
                window = grid[:, rows, cols].reshape(1, -1, 8)
                alone = attn(window).view(grid[:, rows, cols].shape)
                assert torch.allclose(out.view(1, 12, 12, 8)[:, rows, cols], alone, atol=1e-6)


def test_small_grids_use_one_window_without_padding() -> None:
    windows = Windows((4, 6), 8, torch.device("cpu"))
    assert windows.window == (4, 6) and windows.key_mask is None


def test_bad_sizes_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="multiple of the patch"):
        RSDiT(preset_config("tiny"))(torch.randn(1, 4, 15, 16), torch.tensor([1]), None)
    with pytest.raises(ConfigError, match="preset"):
        preset_config("huge")
    with pytest.raises(ConfigError, match="hidden_size"):
        preset_config("tiny", num_heads=3)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = jitter(RSDiT(preset_config("tiny"))).train()
    ckpt = RSDiT(preset_config("tiny"), checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x, t, y = torch.randn(2, 4, 16, 16), torch.tensor([5, 50]), torch.rand(2, 1, 32, 32)
    for model in (plain, ckpt):
        F.mse_loss(model(x, t, y), torch.zeros(2, 8, 16, 16)).backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name


# -- the official network, through the converter ---------------------------------------------


@pytest.fixture(scope="module")
def torchange_rsdit() -> ModuleType:
    """torchange 0.0.4's ``rsdit.py``, loaded by path (it needs only torch, timm, einops)."""
    spec = importlib.util.find_spec("torchange")
    pytest.importorskip("einops")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchange is not installed (pip install --no-deps torchange==0.0.4)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models/changen2/rsdit.py"
    file_spec = importlib.util.spec_from_file_location("torchange_rsdit", path)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


def _equivalence(module: ModuleType, tmp_path: Path, latent: int) -> None:
    torch.manual_seed(0)
    theirs = jitter(module.RSDiT_S_2(), scale=0.02)
    path = tmp_path / "rsdit.pt"
    ema = {k: v.clone() for k, v in theirs.state_dict().items()}
    model = {k: torch.zeros_like(v) for k, v in ema.items()}
    torch.save({"model": model, "ema": ema, "args": argparse.Namespace(model="RSDiT-S/2")}, path)
    ours = load_official_rsdit(path)
    x, t = torch.randn(1, 4, latent, latent), torch.tensor([321])
    labels = torch.rand(1, 1, latent * 8, latent * 8)
    with torch.no_grad():
        expected, got = theirs(x, t, labels), ours(x, t, labels)
    assert (expected - got).abs().max() <= 1e-5


def test_converter_reproduces_torchange_at_256(torchange_rsdit: ModuleType, tmp_path: Path) -> None:
    _equivalence(torchange_rsdit, tmp_path, 32)


@pytest.mark.slow
def test_converter_reproduces_torchange_at_1024(
    torchange_rsdit: ModuleType, tmp_path: Path
) -> None:
    _equivalence(torchange_rsdit, tmp_path, 128)


def official_name(key: str) -> str:
    """torchange's name of one of our parameters (the inverse of the converter's table)."""
    for ours, theirs in (
        (r"^patch\.", "x_embedder.proj."),
        (r"^time\.", "t_embedder."),
        (r"^label\.", "y_embedder.convs."),
        (r"^final\.modulation\.", "final_layer.adaLN_modulation."),
        (r"^final\.", "final_layer."),
        (r"^(blocks\.\d+)\.modulation\.", r"\1.adaLN_modulation."),
    ):
        key, n = re.subn(ours, theirs, key, count=1)
        if n:
            break
    return key


def test_converter_infers_every_preset_and_refuses_foreign_weights(tmp_path: Path) -> None:
    with torch.device("meta"):
        for name in PRESETS:
            config = preset_config(name, label_channels=3)
            state = RSDiT(config).state_dict()
            official = {"module." + official_name(k): v for k, v in state.items()}
            converted = convert_state_dict(official)
            assert converted.keys() == state.keys()
            assert infer_config(converted) == config
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    with pytest.raises(FormatError, match="unexpected RS-DiT weight"):
        load_official_rsdit(path)
