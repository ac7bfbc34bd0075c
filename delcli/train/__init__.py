"""Training: the fit loop (`engine.fit`), optimizer and schedule, EMA, checkpoints,
validation, and DDP under torchrun. Imported only by `del train` (torch is heavy)."""
