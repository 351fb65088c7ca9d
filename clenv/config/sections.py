"""The fields of a config's top-level keys and of its eval, budget and output sections (the
scenario, data, strategy and model sections take theirs from the registries). Read by the
loader (clenv.config.loader) and the typed models (clenv.config.typed)."""

from __future__ import annotations

from clenv.config.schema import Field

TOP_FIELDS: dict[str, Field] = {
    "name": Field(str, None, "run name (default: the config file's stem)"),
    "seed": Field(int, 0, "learner seed: init, replay sampling", min=0),
    "device": Field(str, "cpu", "cpu, cuda, cuda:N or auto"),
    "threads": Field(int, 1, "torch CPU threads", min=1),
    "scenario": Field(dict, {}, "the stream"),
    "data": Field(dict, None, "the data source (default: synthetic)"),
    "strategy": Field(object, None, "the learner: a mapping or a preset name (default: naive)"),
    "model": Field(dict, None, "the network (default: mlp)"),
    "eval": Field(dict, {}, "evaluation schedule"),
    "budget": Field(dict, {}, "memory and compute budgets"),
    "output": Field(dict, {}, "results folder options"),
}
EVAL_FIELDS: dict[str, Field] = {
    "every": Field(int, 1000, "anytime evaluation period in stream samples (0: task ends only)",
                   min=0),
    "batch_size": Field(int, 1024, "rows per predict call during evaluation", min=1),
    "reference": Field(str, None, "joint: also run the joint reference (intransigence)",
                       choices=("joint",)),
    "threshold": Field(float, 0.8, "multi-label: a class is predicted when sigmoid(score) > "
                       "threshold", min=0, max=1),
}
BUDGET_FIELDS: dict[str, Field] = {
    "memory_size": Field(int, None, "replay memory in samples", min=0),
    "updates_per_sample": Field(float, None, "gradient steps per stream sample", min=0),
}
OUTPUT_FIELDS: dict[str, Field] = {
    "dir": Field(str, None, "results folder (default: results/<name>)"),
    "save_scores": Field(bool, False, "save scores of every task-end evaluation (npz, float16)"),
    "plots": Field(bool, True, "write forgetting.png and accuracy_matrix.png"),
    "checkpoint_every": Field(int, None, "write checkpoint.pt every N stream samples, for "
                              "clenv run --resume (default: no checkpoints)", min=1),
    "loggers": Field(list, [], "write every evaluation also as: tensorboard (scalars), csv "
                     "(evaluations.csv)", item=str),
}
VALIDATION_FIELD = Field(float, None, "fraction of each class's training samples held out "
                         "as a validation split", min=0, max=0.9)
