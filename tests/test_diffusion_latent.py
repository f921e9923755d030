"""Latent spaces: pixel space, and local diffusers autoencoder folders (KL and VQ)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, VQModel

from changen.errors import ConfigError
from changen.synthesis.diffusion.latent import PixelSpace, open_latent_space

TINY = {
    "block_out_channels": (8, 8),
    "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2,
    "norm_num_groups": 4,
    "layers_per_block": 1,
}


def test_pixel_space_is_the_identity() -> None:
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    space = open_latent_space("pixel")
    assert isinstance(space, PixelSpace) and space.factor == 1
    assert torch.equal(space.decode(space.encode(x)), x)


@pytest.mark.parametrize(("cls", "channels"), [(AutoencoderKL, 4), (VQModel, 3)])
def test_a_local_diffusers_folder_is_a_latent_space(
    cls: type, channels: int, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    cls(**TINY, scaling_factor=0.5).save_pretrained(tmp_path / "ae")
    space = open_latent_space(str(tmp_path / "ae"))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = space.encode(x)
    assert space.factor == 2 and space.channels == channels
    assert z.shape == (2, channels, 8, 8)
    assert space.decode(z).shape == x.shape
    assert space.describe()["kind"] == cls.__name__


def test_folders_that_are_not_autoencoders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give 'pixel'"):
        open_latent_space(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a diffusers autoencoder"):
        open_latent_space(str(tmp_path / "empty"))
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(ConfigError, match="not an autoencoder"):
        open_latent_space(str(tmp_path / "unet"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"_class_name": "AutoencoderKL"}')
    with pytest.raises(ConfigError, match="cannot load"):
        open_latent_space(str(tmp_path / "broken"))


def _changen_checkpoint(run: Path, kind: str = "changen_autoencoder") -> Path:
    """A one-step run folder holding a tiny VQ autoencoder the way the trainer saves it."""
    from changen.engine.checkpoint import save_checkpoint
    from changen.engine.run import publish_last, step_dir
    from changen.synthesis.diffusion.autoencoder import write_diffusers_folder

    torch.manual_seed(0)
    model = VQModel(**TINY)
    step = save_checkpoint(step_dir(run, 1), {"autoencoder": model}, {"kind": kind})
    if kind == "changen_autoencoder":
        write_diffusers_folder(model, step, scaling_factor=0.25)
    publish_last(step)
    return step


def test_a_changen_autoencoder_checkpoint_or_run_is_a_latent_space(tmp_path: Path) -> None:
    step = _changen_checkpoint(tmp_path / "run")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    spaces = [open_latent_space(str(p)) for p in (step, tmp_path / "run", step.parent / "last")]
    assert spaces[1].describe()["folder"] == str((step.parent / "last" / "autoencoder").resolve())
    latents = [s.encode(x) for s in spaces]
    assert all(torch.equal(z, latents[0]) for z in latents) and latents[0].shape == (1, 3, 8, 8)
    assert spaces[0].scale == 0.25  # type: ignore[attr-defined]  # the saved scaling_factor


def test_checkpoints_that_hold_no_autoencoder_are_one_line_errors(tmp_path: Path) -> None:
    _changen_checkpoint(tmp_path / "gan", kind="changen_gan")
    with pytest.raises(ConfigError, match="a changen_gan checkpoint, not a latent autoencoder"):
        open_latent_space(str(tmp_path / "gan"))
    step = _changen_checkpoint(tmp_path / "cut")
    for sub in (step / "autoencoder", step.parent / "last" / "autoencoder"):
        for f in sub.iterdir():
            f.unlink()
        sub.rmdir()
    with pytest.raises(ConfigError, match="without its autoencoder/ folder") as e:
        open_latent_space(str(tmp_path / "cut"))
    assert "\n" not in str(e.value)
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds no checkpoint yet"):
        open_latent_space(str(tmp_path / "empty"))
