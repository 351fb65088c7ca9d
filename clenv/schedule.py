"""When the stream loop evaluates (loop layer, docs/design.md): at task ends, at anytime points
every ``eval.every`` samples, and at the stream's probes. One record per position (events
format 3): the last task end at a position also serves as the anytime point due there."""

from __future__ import annotations

import math
from collections.abc import Iterator

from clenv.scenarios.stream import Stream


class Schedule:
    """The next task end, anytime point and probe of one pass over a stream.

    ``next_due`` is the first position where anything is due: the loop compares one number
    per step and asks :meth:`due` only there."""

    def __init__(self, stream: Stream, every: int) -> None:
        self.task_ends = stream.task_ends.tolist()
        self.T = stream.n_tasks
        self.every = every
        self.next_task = 0  # index of the next task end to reach
        self.next_eval = every if every else None
        self.probes = list(stream.probes)
        self.n_probes = len(self.probes)
        self.started = -1  # the last task whose start hook ran
        self.end_served = False  # the stream's end got its anytime point from a task end
        self._update()

    def _update(self) -> None:
        due = [math.inf]
        if self.next_task < self.T:
            due.append(self.task_ends[self.next_task])
        if self.next_eval is not None:
            due.append(self.next_eval)
        if self.probes:
            due.append(self.probes[0][0])
        self.next_due = min(due)

    def loop_state(self) -> dict:
        """The schedule's position, for a checkpoint."""
        return {"next_task": self.next_task, "next_eval": self.next_eval,
                "started": self.started, "probes_done": self.n_probes - len(self.probes)}

    def restore(self, loop: dict) -> None:
        """Continue from :meth:`loop_state`."""
        self.next_task, self.next_eval, self.started = (loop[k] for k in (
            "next_task", "next_eval", "started"))
        del self.probes[:loop["probes_done"]]
        self._update()

    def task_to_start(self) -> int | None:
        """The task whose start hook is due before the next batch (exposed boundaries)."""
        if self.started < self.next_task:
            self.started = self.next_task
            return self.next_task
        return None

    def due(self, pos: int, terminated: bool) -> Iterator[tuple[str, dict]]:
        """The evaluations due at ``pos``, in order: (kind, extra fields of the record). Task
        ends come first: a task hook (e.g. joint's retraining) is part of reaching pos."""
        every, ends = self.every, self.task_ends
        while self.next_task < self.T and pos >= ends[self.next_task]:
            t = self.next_task
            last_here = t + 1 == self.T or pos < ends[t + 1]
            serves = last_here and bool(every) and (
                terminated or (self.next_eval is not None and pos >= self.next_eval))
            yield "task_end", {"row": t, **({"kinds": ["task_end", "anytime"]} if serves
                                            else {})}
            if serves:
                self.next_eval = (pos // every + 1) * every
                self.end_served = terminated
            self.next_task += 1
        if self.next_eval is not None and pos >= self.next_eval:
            yield "anytime", {}
            self.next_eval = (pos // every + 1) * every
        while self.probes and pos >= self.probes[0][0]:
            target, extra = self.probes.pop(0)
            yield "probe", {"target": target, **extra}
        self._update()

    def end_needs_anytime(self, pos: int) -> bool:
        """A_last: the stream's end is an anytime point unless a record already served it."""
        return bool(self.every) and bool(pos % self.every) and not self.end_served
