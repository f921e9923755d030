"""The run engine below every model family: checkpoints, run folders, run config, progress."""
