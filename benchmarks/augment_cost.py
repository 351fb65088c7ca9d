"""Cost per training step of seeded augmentation (clenv.training.augment) against a hand-written
torch step and against torchvision's batch transforms.

One online ER step on CIFAR-sized images (3x32x32, uint8, batch 10 stream + 10 replay = 20 rows,
the small CNN) is timed (a) as a hand-written torch step (forward, masked CE, backward, SGD), and
(b) through clenv's SupervisedStrategy.step with the ``augment`` section off, crop + flip,
+ AutoAugment (one seeded policy per sample), + CutMix; plus (c) torchvision's
RandomCrop + RandomHorizontalFlip + AutoAugment applied to the whole batch at once (one draw per
batch from torch's global generator — what clenv avoids). torch threads = 1; repetitions
interleaved; prints milliseconds per step and, last, the ratio of each clenv variant to the
hand-written step.

    python benchmarks/augment_cost.py [--reps 5] [--steps 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from clenv.models.build import build_model
from clenv.strategies.naive import Naive
from clenv.strategies.spec import StrategySpec
from clenv.training.config import validate_augment

SHAPE = (3, 32, 32)
VARIANTS = {
    "off": {},
    "crop+flip": {"crop": 4, "flip": True},
    "crop+flip+autoaugment": {"crop": 4, "flip": True, "autoaugment": "cifar10"},
    "crop+flip+autoaugment+cutmix": {"crop": 4, "flip": True, "autoaugment": "cifar10",
                                     "cutmix": 1.0},
}


def strategy(aug: dict) -> Naive:
    s = Naive(lr=0.05, augment=validate_augment(aug, "augment") if aug else None)
    s.setup(StrategySpec(input_shape=SHAPE, image=True, n_classes=10, batch_size=20,
                         stream_length=10_000, n_tasks=1, model={"name": "cnn"}))
    s.seen[:] = True
    return s


def hand_step_time(x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model({"name": "cnn"}, SHAPE, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    t0 = time.process_time()
    for _ in range(steps):
        loss = F.cross_entropy(model(x.float().div(255.0)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.process_time() - t0) / steps


def clenv_step_time(s: Naive, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    t0 = time.process_time()
    for _ in range(steps):
        s.step(x, y)
    return (time.process_time() - t0) / steps


def torchvision_batch_time(x: torch.Tensor, steps: int) -> float:
    from torchvision import transforms as T

    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                    T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)])
    t0 = time.process_time()
    for _ in range(steps):
        tf(x)
    return (time.process_time() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (20, *SHAPE), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, 20))
    strategies = {k: strategy(v) for k, v in VARIANTS.items()}
    times: dict[str, list[float]] = {k: [] for k in ["hand", *VARIANTS, "tv_batch_augment"]}
    for _ in range(args.reps):
        times["hand"].append(hand_step_time(x, y, args.steps))
        for k, s in strategies.items():
            times[k].append(clenv_step_time(s, x, y, args.steps))
        times["tv_batch_augment"].append(torchvision_batch_time(x, args.steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:32s} {1000 * v:8.2f} ms CPU/step")
    for k in VARIANTS:
        print(f"ratio clenv[{k}]/hand: {med[k] / med['hand']:.2f}")


if __name__ == "__main__":
    main()
