"""Accuracy, Wilson interval, per-class accuracy and the confusion matrix of predictions.

    >>> import numpy as np
    >>> s = score_predictions(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"])
    >>> s["accuracy"], s["confusion"]
    (0.75, [[1, 1], [0, 2]])

No TensorFlow.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyharden.stats import wilson_interval


def score_predictions(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """The scores of predicted labels against true ones.

    Returns n, correct, accuracy, wilson95 [lo, hi], per_class (name, n, correct,
    accuracy or None for a class with no sample, wilson95) and confusion[true][pred].
    """
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels for {len(y_pred)} predictions")
    k = len(class_names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    n, correct = int(len(y_true)), int(np.trace(confusion))
    per_class = []
    for c, name in enumerate(class_names):
        nc, kc = int(confusion[c].sum()), int(confusion[c, c])
        per_class.append({"name": str(name), "n": nc, "correct": kc, "accuracy": kc / nc if nc else None,
                          "wilson95": list(wilson_interval(kc, nc)) if nc else None})
    return {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0,
            "wilson95": list(wilson_interval(correct, n)), "per_class": per_class,
            "confusion": confusion.tolist(), "class_names": [str(c) for c in class_names]}
