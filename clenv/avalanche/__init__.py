"""clenv and Avalanche (avalanche-lib 0.6), both ways.

- Export: ``to_benchmark(cfg_or_path, mode="offline"|"online")`` turns any clenv single-label
  or hierarchical stream into an Avalanche benchmark (same samples, order and test sets);
  ``export_stream`` gives the same data as tensors without importing Avalanche.
- Import: ``strategy: {name: avalanche, class: Replay, args: {mem_size: 200}}`` runs an
  Avalanche training strategy inside clenv's Runner (clenv.avalanche.strategy).

Avalanche is imported only when a function here needs it (it takes several seconds).
"""

from __future__ import annotations

from clenv.avalanche.export import ExportedStream, TaskData, export_stream


def to_benchmark(*args, **kwargs):
    """See clenv.avalanche.benchmark.to_benchmark."""
    from clenv.avalanche.benchmark import to_benchmark as build

    return build(*args, **kwargs)


__all__ = ["ExportedStream", "TaskData", "export_stream", "to_benchmark"]
