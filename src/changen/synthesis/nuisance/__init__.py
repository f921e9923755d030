"""Nuisance between dates: learning-free, seeded acquisition differences applied to the
post-event image after any synthesizer, so that unchanged regions differ as in real pairs
(see :mod:`.model`)."""

from changen.synthesis.nuisance.config import COMPONENTS, PRESETS, NuisanceConfig, nuisance_config
from changen.synthesis.nuisance.model import Nuisance
from changen.synthesis.nuisance.style import DonorBank

__all__ = ["COMPONENTS", "PRESETS", "DonorBank", "Nuisance", "NuisanceConfig", "nuisance_config"]
