"""The Changen GAN: generator with masked transitions, segmentation discriminator, losses.

Pure torch modules and functions; the training loop lives elsewhere.
"""

from changen.synthesis.gan.config import (
    PRESETS,
    DiscriminatorConfig,
    GanConfig,
    GeneratorConfig,
    preset,
)
from changen.synthesis.gan.discriminator import FAKE, SegDiscriminator
from changen.synthesis.gan.generator import ChangenGenerator, sample_noise
from changen.synthesis.gan.losses import class_balance_weights, d_loss, g_loss
from changen.synthesis.gan.transition import MaskedTransition

__all__ = [
    "FAKE",
    "PRESETS",
    "ChangenGenerator",
    "DiscriminatorConfig",
    "GanConfig",
    "GeneratorConfig",
    "MaskedTransition",
    "SegDiscriminator",
    "class_balance_weights",
    "d_loss",
    "g_loss",
    "preset",
    "sample_noise",
]
