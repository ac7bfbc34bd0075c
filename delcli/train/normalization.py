"""Input-normalisation statistics of a training split (docs/model.md §0).

Computed once, at the start of a fresh run, from every training video whole
(no random crop), over its valid steps, in float64; installed into the
network's `FeatureNormalization` buffers, so they are saved with the weights.
"""

from __future__ import annotations

from delcli.model.normalization import ChannelStatistics


def fit_input_normalization(model, dataset) -> str | None:
    """Set `model`'s normalisation statistics from `dataset` (a `FeatureDataset`).

    Returns a one-line note for the run's log, or None when the model normalises nothing.
    """
    modules = model.normalizations()
    if not modules:
        return None
    running = {name: ChannelStatistics() for name in modules}
    for index in range(len(dataset)):
        item = dataset.item(index, crop=False)
        for name, statistics in running.items():
            statistics.add(getattr(item, name))
    parts = []
    for name, statistics in running.items():
        mean, std = statistics.result()
        modules[name].set_statistics(mean, std, statistics.count)
        offset = float((mean.abs() / std.clamp_min(1e-12)).median())
        parts.append(f"{name} {mean.shape[0]} channels, median |mean|/std {offset:.2g}")
    steps = next(iter(running.values())).count
    return f"input normalisation from {len(dataset)} training videos ({steps} steps): " + "; ".join(
        parts
    )
