"""Diffusion synthesis: the shared core (schedulers, latent autoencoders, masked change
sampling) and its families — Changen2's RS-DiT (:mod:`~changen.synthesis.diffusion.rsdit`)."""
