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
