"""Run-level reference of clenv's MIR, SCR and BiC against Avalanche 0.6 (issue 20, item 1).

One small stream (the quickstart synthetic data with 100 training samples per class: 10
classes, 5 disjoint tasks, batch 10, memory 200), the same initial weights (torch seeded with
the run seed before the model is built, as SupervisedStrategy.setup does), SGD lr 0.05, one
gradient step per Env batch; 5 paired seeds (the run and scenario seed). For each method it
prints the final accuracy of both sides per seed and the paired 95% CI of clenv - Avalanche in
points.

- MIR: clenv ``mir`` vs ``strategy: {name: avalanche, class: MIR, mode: online}`` (C = 50
  candidates, k = 10 retrieved, 200 samples of memory).
- BiC: clenv ``bic`` (online, exposed boundaries) vs Avalanche's ``BiC`` driven by hand on
  ``to_benchmark(cfg, "offline")``: one experience per task, trained once, unshuffled, in
  clenv's order (the same steps as clenv's single pass; Avalanche's BiC fits its bias layer at
  every experience end, so online it would refit it after every Env batch). Avalanche 0.6's
  BiCPlugin assigns ``experience.dataset``, which its own DatasetExperience makes read-only
  (through the adapter it fails with "property 'dataset' ... has no setter"); the script gives
  each experience a writable ``dataset``, which is what the plugin expects. It also passes
  ``verbose`` to torch's MultiStepLR, which this torch no longer accepts: the script hands the
  plugin a MultiStepLR that drops that argument (both are Avalanche-side fixes only).
- SCR: clenv ``scr`` vs Avalanche's ``SCR`` driven by hand on ``to_benchmark(cfg, "online")``
  (the adapter cannot build the SCRModel it needs), with the same encoder and projection head
  (the head's output normalised, as SupCon needs), temperature 0.07, identity views.

With ``--bic-as-avalanche`` the clenv side of BiC is ``AvalancheLikeBiC`` below: clenv's BiC
with Avalanche's memory timing (a task's samples join the replay memory only at its end, as
Avalanche's buffer is updated at experience ends) and plain cross-entropy over all classes (no
masking of unseen classes), to test whether those documented differences explain a BiC gap.
With ``--bic-class-softmax`` Avalanche's BiC distils with the softmax over classes (the
paper's L_d, as clenv) instead of its 0.6 softmax over the batch (``dim=0``), to test whether
that defect explains a BiC gap.

    nice -n 10 python -W ignore benchmarks/zoo_reference_online.py [--seeds 5]
        [--train-per-class 100] [--methods mir,scr,bic] [--bic-class-softmax]
        [--bic-as-avalanche]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidence_stats import paired_ci  # noqa: E402

from clenv.config.loader import load_config  # noqa: E402
from clenv.runner import Run  # noqa: E402
from clenv.strategies.bic import BiC  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MEMORY, BATCH, LR = 200, 10, 0.05


def base_config(seed: int, train_per_class: int) -> dict:
    cfg = yaml.safe_load((REPO / "scenarios" / "quickstart.yaml").read_text())
    cfg["seed"] = seed
    cfg["scenario"]["seed"] = seed
    cfg["data"]["train_per_class"] = train_per_class
    cfg["budget"] = {"memory_size": MEMORY}
    cfg["eval"] = {"every": 0}
    cfg["output"] = {"plots": False}
    return cfg


def final_accuracy(cfg: dict) -> float:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = Run(load_config(cfg)).execute(Path(tmp) / "out")
    return float(metrics["final_accuracy"])


NATIVE = {
    "mir": {"name": "mir", "lr": LR, "candidates": 50, "replay_batch_size": BATCH},
    "bic": {"name": "bic", "lr": LR, "val_share": 0.1, "replay_batch_size": BATCH},
    "scr": {"name": "scr", "lr": LR, "temperature": 0.07, "replay_batch_size": BATCH},
}
ADAPTER = {
    "mir": {"name": "avalanche", "class": "MIR", "mode": "online", "lr": LR,
            "args": {"mem_size": MEMORY, "subsample": 50, "batch_size_mem": BATCH}},
}


def avalanche_scr(cfg: dict) -> float:
    """Avalanche's SCR on the exported online benchmark, evaluated after the last batch."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.models import SCRModel
    from avalanche.training import SCR
    from avalanche.training.plugins import EvaluationPlugin
    from torch import nn

    from clenv.avalanche import to_benchmark
    from clenv.models.build import build_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm = to_benchmark(cfg, mode="online")
        ex = bm.exported
        torch.manual_seed(cfg["seed"])
        net = build_model(cfg["model"], ex.input_shape, ex.n_classes, cfg["seed"])
        d = net.feature_dim
        proj = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 128), Normalize())
        model = SCRModel(feature_extractor=net.features, projection=proj)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        strategy = SCR(model=model, optimizer=opt, mem_size=MEMORY, temperature=0.07,
                       train_mb_size=BATCH, batch_size_mem=BATCH, eval_mb_size=1024,
                       device="cpu", evaluator=EvaluationPlugin(
                           accuracy_metrics(stream=True), loggers=[]))
        for exp in bm.train_stream:
            strategy.train(exp, eval_streams=[])
        strategy.eval(bm.test_stream)
    return float(strategy.evaluator.get_last_metrics()[
        "Top1_Acc_Stream/eval_phase/test_stream"])


def avalanche_bic(cfg: dict) -> float:
    """Avalanche's BiC, one experience per task in clenv's order, evaluated at the end."""
    import avalanche.training.plugins.bic as bic_plugin
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training import BiC
    from avalanche.training.plugins import EvaluationPlugin

    from clenv.avalanche import to_benchmark
    from clenv.models.build import build_model

    bic_plugin.MultiStepLR = multistep_without_verbose
    if CLASS_SOFTMAX:
        bic_plugin.BiCPlugin.cross_entropy = class_softmax_distillation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm = to_benchmark(cfg, mode="offline")
        ex = bm.exported
        torch.manual_seed(cfg["seed"])
        model = build_model(cfg["model"], ex.input_shape, ex.n_classes, cfg["seed"])
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        strategy = BiC(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
                       mem_size=MEMORY, val_percentage=0.1, T=2, stage_2_epochs=200, lr=0.1,
                       train_mb_size=BATCH, train_epochs=1, eval_mb_size=1024, device="cpu",
                       evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))
        for exp in bm.train_stream:
            writable(exp)
            strategy.train(exp, eval_streams=[], shuffle=False)
        strategy.eval(bm.test_stream)
    return float(strategy.evaluator.get_last_metrics()[
        "Top1_Acc_Stream/eval_phase/test_stream"])


def multistep_without_verbose(optimizer, milestones, gamma=0.1, verbose=None):
    """torch's MultiStepLR without the ``verbose`` argument Avalanche 0.6 passes."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)


CLASS_SOFTMAX = False


def class_softmax_distillation(self, new_outputs, old_outputs):
    """The paper's L_d at T = 2: soft cross-entropy with the softmax over classes."""
    target = torch.softmax(old_outputs / 2, dim=1)
    return -(target * torch.log_softmax(new_outputs / 2, dim=1)).sum(1).mean()


def writable(exp) -> None:
    """Give an Avalanche 0.6 experience the settable ``dataset`` that BiCPlugin assigns."""
    cls = type(exp)
    exp.__class__ = type(f"Writable{cls.__name__}", (cls,), {
        "dataset": property(lambda self: self._dataset,
                            lambda self, value: setattr(self, "_dataset", value))})


class AvalancheLikeBiC(BiC):
    """clenv's BiC with Avalanche's memory timing and unmasked cross-entropy (module doc)."""

    def setup(self, spec) -> None:
        super().setup(spec)
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    def masked(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        add = self.memory.add
        self.memory.add = lambda x, y: self.pending.append((x.clone(), y.clone()))
        try:
            return super().learn(batch, info)
        finally:
            self.memory.add = add

    def on_task_end(self, task: int) -> None:
        super().on_task_end(task)
        if self.pending:
            self.memory.add(torch.cat([p[0] for p in self.pending]),
                            torch.cat([p[1] for p in self.pending]))
            self.pending = []


class Normalize(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x, dim=1)


HAND = {"scr": avalanche_scr, "bic": avalanche_bic}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--train-per-class", type=int, default=100)
    ap.add_argument("--methods", default="mir,scr,bic")
    ap.add_argument("--bic-class-softmax", action="store_true")
    ap.add_argument("--bic-as-avalanche", action="store_true")
    args = ap.parse_args()
    global CLASS_SOFTMAX
    CLASS_SOFTMAX = args.bic_class_softmax
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # Avalanche's deprecation notices
    for method in args.methods.split(","):
        native, ref = [], []
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            cfg = base_config(seed, args.train_per_class)
            cfg["strategy"] = copy.deepcopy(NATIVE[method])
            if method == "bic" and args.bic_as_avalanche:
                cfg["strategy"]["name"] = "zoo_reference_online:AvalancheLikeBiC"
            native.append(final_accuracy(cfg))
            if method in HAND:
                ref.append(HAND[method](base_config(seed, args.train_per_class)))
            else:
                cfg["strategy"] = copy.deepcopy(ADAPTER[method])
                ref.append(final_accuracy(cfg))
            print(f"{method} seed {seed}: clenv {100 * native[-1]:.1f}  "
                  f"avalanche {100 * ref[-1]:.1f}", flush=True)
        print(f"{method}: clenv - avalanche final accuracy {paired_ci(native, ref)} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
