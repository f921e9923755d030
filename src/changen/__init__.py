"""changen: synthetic change-detection data from single-temporal labels."""

__version__ = "0.1.0"
