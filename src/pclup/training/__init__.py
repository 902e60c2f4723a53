"""Training: the loop (``loop.train``), its schedule, checkpoints and EMA."""
