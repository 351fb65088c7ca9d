"""Avalanche datasets and experiences from clenv tensors: the one builder both directions use.

Offline: one ``DatasetExperience`` per task (its samples in the order clenv serves them, every
pass), decorated like Avalanche's ``with_classes_timeline`` (classes in this experience,
previous classes, classes seen so far, future classes). Online: ``OnlineCLExperience`` mini
experiences of one Env batch each, with the task boundary attributes (``is_first_subexp``,
``is_last_subexp``, ``sub_stream_length``) visible when ``access_task_boundaries`` is on, as
``split_online_stream(..., access_task_boundaries=True)`` makes them.
"""

from __future__ import annotations

import warnings

import torch


def classification_dataset(x: torch.Tensor, y: torch.Tensor, task_label: int = 0):
    """A task-aware supervised classification dataset over in-memory tensors (items: x, y, t)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from avalanche.benchmarks.utils.classification_dataset import (
            _make_taskaware_tensor_classification_dataset,
        )
    return _make_taskaware_tensor_classification_dataset(x, y, task_labels=int(task_label))


def task_experience(dataset, index: int, previous: set[int], future: set[int] | None = None):
    """One offline experience; ``future`` is unknown to a learner (empty) and known to a
    benchmark built from the whole stream."""
    from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience

    exp = DatasetExperience(dataset=dataset, current_experience=index)
    classes = set(dataset.targets.uniques)
    exp.classes_in_this_experience = classes
    exp.previous_classes = set(previous)
    exp.classes_seen_so_far = classes | set(previous)
    exp.future_classes = set(future or set()) - exp.classes_seen_so_far
    return exp


def online_experience(dataset, index: int, origin, *, first: bool, last: bool,
                      sub_stream_length: int | None, boundaries: bool):
    """One online mini experience (an Env batch) of the task experience ``origin``."""
    from avalanche.benchmarks.scenarios.online import OnlineCLExperience

    exp = OnlineCLExperience(dataset=dataset, origin_experience=origin, is_first_subexp=first,
                             is_last_subexp=last, sub_stream_length=sub_stream_length,
                             access_task_boundaries=boundaries)
    exp.current_experience = index
    return exp
