"""What a strategy learns at setup: the StrategySpec (plain data, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StrategySpec:
    """Everything a strategy may know before the stream starts.

    input_shape: shape of one sample (obs["x"] without the batch axis).
    image: True when x is uint8 0-255 (strategies scale it to [0, 1]).
    n_classes: C_max, the number of score columns predict must return.
    batch_size: B, rows per Env step (obs may be padded; obs["valid"] marks real rows).
    stream_length: stream samples the scenario declares (N for flexible memory sampling).
    memory_size / updates_per_sample: the scenario's budgets (None = unbounded).
    levels > 1 (hierarchical streams): predict returns {level: (B, C_level) scores}; rows of a
    batch carry their level in info["level"] and their label at that level in info["y"].
    family: the problem family's name (docs/design.md, "Families"), set by the loop from the
    Family record; a spec built by hand without it gets the family its flags describe.
    """

    input_shape: tuple[int, ...]
    image: bool
    n_classes: int
    batch_size: int
    stream_length: int
    n_tasks: int
    task_ids: bool = False
    boundaries: bool = True
    levels: int = 1
    multi_label: bool = False  # y is multi-hot; info["label_mask"] marks the visible labels
    level_sizes: list[int] = field(default_factory=list)  # classes per level, top first
    parents: list = field(default_factory=list)  # parents[l]: level l+1 id -> level l id
    device: str = "cpu"
    seed: int = 0
    memory_size: int | None = None
    updates_per_sample: float | None = None
    epochs: int = 1
    model: dict = field(default_factory=lambda: {"name": "mlp"})
    # stream positions where the tasks end; given only with exposed boundaries (a learner
    # told the boundaries may know the last batch of a task, as Avalanche's is_last_subexp)
    task_ends: list[int] = field(default_factory=list)
    family: str = ""

    def __post_init__(self) -> None:
        if not self.family:  # a hand-built spec: the family its label flags describe
            self.family = ("multi_label" if self.multi_label
                           else "hierarchical" if self.levels > 1 else "single_label")


def label_shape(spec: StrategySpec) -> tuple[int, ...]:
    """Shape of one sample's label row as strategies store it: () for a class id, (2,) for
    (label, level) in hierarchies, (2, C) for (visible labels, mask) in multi-label streams."""
    return LABEL_SHAPES.get(spec.family, lambda _: ())(spec)


LABEL_SHAPES = {
    "multi_label": lambda spec: (2, spec.n_classes),
    "hierarchical": lambda spec: (2,),
}
