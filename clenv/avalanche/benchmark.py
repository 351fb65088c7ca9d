"""``to_benchmark``: a clenv scenario (YAML) as an Avalanche benchmark.

    bm = clenv.avalanche.to_benchmark("scenarios/iblurry_digits.yaml", mode="online")
    for exp in bm.train_stream:
        strategy.train(exp)
    strategy.eval(bm.test_stream)

offline: ``train_stream`` has one experience per clenv task (lifelong: per segment) holding
its samples in the order clenv serves them (all passes of the task, no shuffling: train with
``train_epochs=1`` to see exactly clenv's sample order). online: ``train_stream`` is
``split_online_stream(offline stream, experience_size=scenario.batch_size, shuffle=False,
access_task_boundaries=True)`` (with a splitter that always flags a task's last batch), one
mini experience per Env batch, never spanning two tasks.
``test_stream`` has one experience per accuracy-matrix column (a task's classes, or a
lifelong concept) with the test rows clenv's evaluator scores. The benchmark also carries
``bm.exported`` (the ExportedStream: tensors, pool sample ids and stream positions).
"""

from __future__ import annotations

import os
import warnings

from clenv.avalanche.experiences import classification_dataset, task_experience
from clenv.avalanche.export import ExportedStream, export_stream
from clenv.errors import UserError

MODES = ("offline", "online")


def split_in_order(exp, size: int):
    """Consecutive mini experiences of ``size`` samples, boundary attributes visible.

    Avalanche 0.6's default splitter never sets ``is_last_subexp`` when the experience length
    is a multiple of ``size`` (it flags only a short final chunk); this one flags the last
    chunk always."""
    from clenv.avalanche.experiences import online_experience

    n = len(exp.dataset)
    starts = list(range(0, n, size))
    for k, a in enumerate(starts):
        sub = exp.dataset.subset(list(range(a, min(a + size, n))))
        yield online_experience(sub, k, exp, first=k == 0, last=k == len(starts) - 1,
                                sub_stream_length=len(starts), boundaries=True)


def to_benchmark(cfg_or_path: str | os.PathLike | dict | ExportedStream, mode: str = "offline",
                 overrides: list[str] | None = None):
    """An Avalanche ``CLScenario`` with ``train_stream`` and ``test_stream`` (module doc)."""
    if mode not in MODES:
        raise UserError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from avalanche.benchmarks.scenarios import split_online_stream
        from avalanche.benchmarks.scenarios.generic_scenario import CLScenario, EagerCLStream
    ex = cfg_or_path if isinstance(cfg_or_path, ExportedStream) else \
        export_stream(cfg_or_path, overrides)
    label = (lambda t: t) if ex.task_ids else (lambda t: 0)
    all_classes: set[int] = set()
    for td in ex.train:
        all_classes |= set(td.y.unique().tolist())
    train, previous = [], set()
    for td in ex.train:
        exp = task_experience(classification_dataset(td.x, td.y, label(td.task)), td.task,
                              previous, all_classes)
        train.append(exp)
        previous = exp.classes_seen_so_far
    test = [task_experience(classification_dataset(td.x, td.y, label(td.task)), td.task, set())
            for td in ex.test]
    train_stream = EagerCLStream("train", train)
    if mode == "online":
        online = split_online_stream(train_stream, experience_size=ex.batch_size, shuffle=False,
                                     experience_split_strategy=split_in_order,
                                     access_task_boundaries=True)
        train_stream = EagerCLStream("train", list(online))
    bm = CLScenario([train_stream, EagerCLStream("test", test)])
    bm.exported = ex
    bm.n_classes = ex.n_classes
    return bm
