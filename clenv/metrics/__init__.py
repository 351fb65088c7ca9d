"""Continual-learning metrics as pure functions (numpy only).

See docs/metrics.md for the formulas, sources and clenv's conventions.
"""

from __future__ import annotations

from clenv.metrics.accuracy_matrix import (
    FWT_REASON_FEW_TASKS,
    FWT_REASON_NO_USABLE,
    as_accuracy_matrix,
    average_forgetting,
    avg_incremental_accuracy,
    bwt,
    final_accuracy,
    forgetting_chaudhry,
    fwt,
    intransigence,
    per_task_forgetting,
)
from clenv.metrics.anytime import (
    a_auc,
    a_avg,
    a_last,
    accuracy_from_counts,
    min_acc,
    old_new_accuracy,
    online_accuracy,
    wc_acc,
)
from clenv.metrics.lifelong import (
    concept_final_accuracy,
    concept_forgetting,
    f_last,
    few_shot_summary,
    pair_backward_transfer,
    pair_forward_transfer,
)
from clenv.metrics.multilabel import (
    DEFAULT_THRESHOLD,
    average_map,
    average_precision_per_class,
    cf1,
    cf1_prs,
    f1_counts,
    map_forgetting,
    mean_average_precision,
    of1,
    predict_at_threshold,
    sample_f1,
)

METRICS: dict[str, str] = {
    "final_accuracy": "mean accuracy over all tasks after the last task, mean_j R[T-1][j]",
    "avg_incremental_accuracy": "mean over task ends of the mean accuracy on tasks seen so far "
    "(Rebuffi et al. 2017)",
    "a_avg": "mean over task ends of the sample-weighted accuracy on seen classes",
    "average_forgetting": "mean drop from the best accuracy since a task was learned to the "
    "final one (max over rows j..T-2)",
    "forgetting_chaudhry": "mean drop from the best earlier accuracy to the final one, max over "
    "rows 0..T-2 (Chaudhry et al. 2018)",
    "bwt": "backward transfer, mean_j R[T-1][j] - R[j][j] (Lopez-Paz & Ranzato 2017)",
    "fwt": "forward transfer, mean_j R[j-1][j] - b[j] with b at initialisation; null when no "
    "task has a usable output before its own task (Lopez-Paz & Ranzato 2017)",
    "intransigence": "mean gap to a joint reference on each new task, R*[j] - R[j][j] "
    "(Chaudhry et al. 2018)",
    "a_auc": "mean anytime accuracy on seen classes, every eval.every samples (Koh et al. 2022)",
    "a_last": "last anytime accuracy on seen classes (Koh et al. 2022)",
    "min_acc": "mean over earlier tasks of their minimum accuracy after being learned "
    "(De Lange et al. 2023)",
    "wc_acc": "worst-case accuracy, (1/T) current-task accuracy + (1-1/T) min_acc "
    "(De Lange et al. 2023)",
    "online_accuracy": "test-then-train accuracy on first-exposure stream samples",
    "old_class_accuracy": "sample-weighted accuracy on classes from earlier tasks",
    "new_class_accuracy": "sample-weighted accuracy on classes of the current task",
    "f_last": "class-wise forgetting, mean over classes with a best earlier task-end accuracy > 0 "
    "of that best minus the last task-end accuracy (Koh et al. 2022, i-Blurry code)",
    "f_last_anytime": "f_last over every evaluation (anytime and task end), one per position",
    "concept_forgetting": "mean drop from the best accuracy since a concept was first trained "
    "to the final one, over the columns of a rectangular R",
    "forward_transfer": "related pairs A -> B: accuracy on B after k samples of B, learner minus "
    "a from-scratch copy trained on the same k samples",
    "backward_transfer": "related pairs A -> B: accuracy on A after B's segment minus before it",
    "few_shot_accuracy": "accuracy on a few-shot concept's test set after its k examples, with "
    "its curve over repeated passes",
    "map": "multi-label mean non-interpolated average precision over seen classes with at least "
    "one positive",
    "average_map": "multi-label mean over task ends of the mAP on seen classes (MULTI-LANE's Avg)",
    "cf1": "multi-label mean per-class F1 at sigmoid > 0.8 (MULTI-LANE's CF1)",
    "cf1_prs": "multi-label 2*CP*CR/(CP+CR) from per-class mean precision CP and recall CR at "
    "sigmoid > 0.8 (Kim et al. 2020, PRS)",
    "of1": "multi-label F1 from TP, FP, FN pooled over seen classes at sigmoid > 0.8",
    "map_forgetting": "average forgetting on the per-task mAP matrix, M[i][j] = mAP on task j's "
    "classes after task i",
    "gcd_all / gcd_old / gcd_new": "AGCD clustering accuracy on all / old / new classes under one "
    "Hungarian assignment, held-out test split, last round (_transductive: unlabelled pool)",
    "novel_coverage": "AGCD: share of the new classes queried at least once (Ma et al. 2024)",
    "novel_ratio": "AGCD: share of queried labels from new classes",
    "novel_entropy": "AGCD: entropy (nats) of the queried new-class histogram, max ln |new|",
}

__all__ = [
    "METRICS",
    "FWT_REASON_FEW_TASKS",
    "FWT_REASON_NO_USABLE",
    "as_accuracy_matrix",
    "final_accuracy",
    "avg_incremental_accuracy",
    "per_task_forgetting",
    "average_forgetting",
    "forgetting_chaudhry",
    "bwt",
    "fwt",
    "intransigence",
    "a_auc",
    "a_last",
    "a_avg",
    "online_accuracy",
    "min_acc",
    "wc_acc",
    "accuracy_from_counts",
    "old_new_accuracy",
    "f_last",
    "concept_forgetting",
    "concept_final_accuracy",
    "pair_forward_transfer",
    "pair_backward_transfer",
    "few_shot_summary",
    "DEFAULT_THRESHOLD",
    "average_precision_per_class",
    "mean_average_precision",
    "average_map",
    "map_forgetting",
    "predict_at_threshold",
    "f1_counts",
    "cf1",
    "cf1_prs",
    "of1",
    "sample_f1",
]
