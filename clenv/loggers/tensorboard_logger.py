"""The ``tensorboard`` logger: every evaluation as TensorBoard scalars in ``tensorboard/``
(torch.utils.tensorboard; the ``loggers`` extra installs tensorboard). The step is the stream
position in samples; tags: ``accuracy/seen``, ``accuracy/task_j``, ``forgetting``,
``online_accuracy``, ``train_loss``, ``budget/<counter>``. Transfer probes (lifelong runs) are
left to the CSV, where their kind is written."""

from __future__ import annotations

import shutil
from pathlib import Path

from clenv.loggers.base import Logger

FOLDER = "tensorboard"
_SKIP = {"kind", "samples", "steps", "task", "row", "wall"}


class TensorBoardLogger(Logger):
    """One SummaryWriter on ``out/tensorboard`` (cleared first: a resumed run replays its log)."""

    name = "tensorboard"

    def __init__(self, out: Path) -> None:
        super().__init__(out)
        from torch.utils.tensorboard import SummaryWriter

        folder = out / FOLDER
        shutil.rmtree(folder, ignore_errors=True)
        self.writer = SummaryWriter(log_dir=str(folder))

    def write_row(self, row: dict) -> None:
        if row["kind"] == "probe":
            return
        step = int(row["samples"])
        for key, value in row.items():
            if key in _SKIP or value is None:
                continue
            if key == "accuracy":
                tag = "accuracy/seen"
            elif key.startswith("task_"):
                tag = f"accuracy/{key}"
            elif key.startswith("budget_"):
                tag = f"budget/{key.removeprefix('budget_')}"
            else:
                tag = key
            self.writer.add_scalar(tag, float(value), global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
