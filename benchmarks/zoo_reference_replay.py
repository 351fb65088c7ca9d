"""Run-level reference check of A-GEM, ER-ACE, DER and DER++ (issue 19, item 3): native
clenv against Avalanche 0.6 through clenv's adapter (``strategy: {name: avalanche, ...}``).

Same stream, initial weights and budgets: scenarios/quickstart.yaml (synthetic, 10 classes,
5 disjoint tasks, online batch 10, MLP [128, 128], SGD lr 0.05, memory 200, one step per
batch) with exposed boundaries, 5 paired seeds (learner and stream seed s for both sides);
Avalanche consolidates at task ends (``consolidate: task``). Avalanche's arguments mirror the
presets: AGEM(patterns_per_exp = 200 / 5, sample_size 256); ER_ACE(mem_size 200,
batch_size_mem 10); DER(mem_size 200, batch_size_mem 10, alpha 0.3, beta 0) for DER and
alpha 0.1, beta 0.5 for DER++.

Per method: final accuracy (mean ± std over seeds, points) of native, Avalanche and a
diagnostic run that removes one named difference, then the paired 95% CIs native − Avalanche
(and whether it lies within ±2 points) and the diagnostic's. Diagnostics: A-GEM, DER and DER++
natively with ``mask_unseen: false``, a loss that does not mask the logits of unseen classes
(Avalanche's criterion is plain cross-entropy over all classes; clenv's masks classes not yet
seen), CI diagnostic − Avalanche; ER-ACE: Avalanche's ER_ACE with Avalanche's own reservoir
memory in place of its class-balanced one (clenv's memory is a reservoir), CI native −
diagnostic.

Finally, Avalanche's AGEM with one experience per batch (``consolidate: batch``) and
sample_size 64: its per-experience share sample_size // n_experiences reaches 0 and it fails
(clenv's A-GEM draws min(sample_size, memory) samples).

    python benchmarks/zoo_reference_replay.py [--seeds 5] [--train-per-class 300]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evidence_stats import mean_std, paired_ci  # noqa: E402

from clenv.config.loader import load_config  # noqa: E402
from clenv.errors import UserError  # noqa: E402
from clenv.runner import Run  # noqa: E402
from clenv.sweep.stats import paired_difference  # noqa: E402

MEMORY = 200
METHODS = {
    "agem": ({"name": "agem", "sample_size": 256},
             {"class": "AGEM", "args": {"patterns_per_exp": MEMORY // 5, "sample_size": 256}}),
    "er_ace": ({"name": "er_ace"},
               {"class": "ER_ACE", "args": {"mem_size": MEMORY, "batch_size_mem": 10}}),
    "der": ({"name": "der", "alpha": 0.3},
            {"class": "DER", "args": {"mem_size": MEMORY, "batch_size_mem": 10, "alpha": 0.3,
                                      "beta": 0.0}}),
    "derpp": ({"name": "derpp", "alpha": 0.1, "beta": 0.5},
              {"class": "DER", "args": {"mem_size": MEMORY, "batch_size_mem": 10,
                                        "alpha": 0.1, "beta": 0.5}}),
}
# the diagnostic per method: (label, side, strategy section); side "native": the CI is
# diagnostic − Avalanche; side "avalanche": native − diagnostic
AVALANCHE = {"name": "avalanche", "mode": "online", "consolidate": "task", "optimizer": "sgd",
             "lr": 0.05}
DIAGNOSTICS = {
    "agem": ("native, mask_unseen: false", "native",
             {**METHODS["agem"][0], "mask_unseen": False}),
    "er_ace": ("Avalanche, reservoir memory", "avalanche",
               {**AVALANCHE, **METHODS["er_ace"][1],
                "class": "zoo_reference_replay:ReservoirERACE"}),
    "der": ("native, mask_unseen: false", "native",
            {**METHODS["der"][0], "mask_unseen": False}),
    "derpp": ("native, mask_unseen: false", "native",
              {**METHODS["derpp"][0], "mask_unseen": False}),
}


def reservoir_er_ace() -> type:
    """Avalanche's ER_ACE with Avalanche's ReservoirSamplingBuffer as its memory."""
    from avalanche.training import ER_ACE
    from avalanche.training.storage_policy import ReservoirSamplingBuffer

    class ReservoirERACE(ER_ACE):
        def _before_training_exp(self, **kwargs):
            if not isinstance(self.storage_policy, ReservoirSamplingBuffer):
                self.storage_policy = ReservoirSamplingBuffer(max_size=self.mem_size)
            super()._before_training_exp(**kwargs)

    return ReservoirERACE


def config(strategy: dict, seed: int, train_per_class: int) -> dict:
    """scenarios/quickstart.yaml with the seed, exposed boundaries and ``strategy``."""
    raw = yaml.safe_load((REPO / "scenarios" / "quickstart.yaml").read_text())
    raw.update(seed=seed, threads=1, strategy=strategy, eval={"every": 0},
               output={"plots": False}, budget={"memory_size": MEMORY})
    raw["scenario"].update(seed=seed, boundaries="exposed")
    raw["data"]["train_per_class"] = train_per_class
    return load_config(raw, base_dir=REPO / "scenarios")


def final_accuracy(cfg: dict) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(Run(cfg).execute(None)["final_accuracy"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--train-per-class", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    print(f"quickstart, {args.train_per_class} train samples per class, memory {MEMORY}, "
          f"exposed boundaries, seeds {seeds}; final accuracy in points")
    print("| method | native | Avalanche | native − Avalanche (95% CI) | within ±2 | "
          "diagnostic | diagnostic's accuracy | its CI (95%) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (native, avl) in METHODS.items():
        label, side, diag = DIAGNOSTICS[name]
        acc = {"native": [], "avalanche": [], "diagnostic": []}
        for s in seeds:
            acc["native"].append(final_accuracy(config(native, s, args.train_per_class)))
            acc["avalanche"].append(final_accuracy(config({**AVALANCHE, **avl}, s,
                                                          args.train_per_class)))
            acc["diagnostic"].append(final_accuracy(config(diag, s, args.train_per_class)))
        _, lo, hi = paired_difference(acc["native"], acc["avalanche"])
        inside = lo is not None and lo >= -0.02 and hi <= 0.02
        diag_ci = (paired_ci(acc["diagnostic"], acc["avalanche"]) if side == "native" else
                   paired_ci(acc["native"], acc["diagnostic"]))
        what = "diagnostic − Avalanche" if side == "native" else "native − diagnostic"
        print(f"| {name} | {mean_std(acc['native'])} | {mean_std(acc['avalanche'])} | "
              f"{paired_ci(acc['native'], acc['avalanche'])} | {'yes' if inside else 'no'} | "
              f"{label} | {mean_std(acc['diagnostic'])} | {what}: {diag_ci} |", flush=True)
    cfg = config({"name": "avalanche", "class": "AGEM", "mode": "online", "consolidate": "batch",
                  "optimizer": "sgd", "lr": 0.05,
                  "args": {"patterns_per_exp": 4, "sample_size": 64}}, 0, args.train_per_class)
    try:
        final_accuracy(cfg)
        print("Avalanche AGEM, one experience per batch, sample_size 64: ran to the end")
    except UserError as exc:
        print(f"Avalanche AGEM, one experience per batch, sample_size 64: {exc}")


def __getattr__(name: str):  # the diagnostic classes, by name
    if name == "ReservoirERACE":
        return reservoir_er_ace()
    raise AttributeError(name)


if __name__ == "__main__":
    main()
