"""Segmentation quality: pixel overlap (Dice, IoU) and object-level detection (F1 at an IoU threshold).

Dice/IoU judge the foreground as a whole; they barely move when two touching nuclei are merged into
one, which is exactly what matters for counting. Object F1 matches predicted and true instances
one-to-one (Hungarian assignment on IoU) and counts a match only at IoU >= threshold.

>>> import numpy as np
>>> true = np.zeros((4, 4), dtype=int); true[:2, :2] = 1; true[2:, 2:] = 2
>>> pred = true.copy(); pred[2:, 2:] = 0
>>> dice(pred > 0, true > 0), iou(pred > 0, true > 0), object_f1(pred, true)
(0.6666666666666666, 0.5, 0.6666666666666666)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["ObjectMatch", "dice", "iou", "iou_matrix", "match_objects", "object_f1"]


def dice(pred: np.ndarray, true: np.ndarray) -> float:
    """2|P and T| / (|P| + |T|) of two foreground masks (nonzero = foreground); 1.0 when both are empty."""
    p, t = _binary_pair(pred, true)
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(p & t)) / total


def iou(pred: np.ndarray, true: np.ndarray) -> float:
    """|P and T| / |P or T| of two foreground masks (nonzero = foreground); 1.0 when both are empty."""
    p, t = _binary_pair(pred, true)
    union = int(np.count_nonzero(p | t))
    return 1.0 if union == 0 else int(np.count_nonzero(p & t)) / union


def iou_matrix(pred_labels: np.ndarray, true_labels: np.ndarray) -> np.ndarray:
    """IoU of every predicted object (rows) with every true object (columns), from one contingency table.

    Label values need not be consecutive; rows and columns follow the sorted nonzero labels.
    """
    if pred_labels.shape != true_labels.shape:
        raise ValueError(f"label images differ in shape: {pred_labels.shape} vs {true_labels.shape}")
    pred_ids, pred_index = np.unique(pred_labels, return_inverse=True)
    true_ids, true_index = np.unique(true_labels, return_inverse=True)
    # Index 0 is background when it is present; shift so background always sits at index 0.
    pred_index = pred_index.ravel() + (0 if pred_ids[0] == 0 else 1)
    true_index = true_index.ravel() + (0 if true_ids[0] == 0 else 1)
    n_pred = int(np.count_nonzero(pred_ids)) + 1
    n_true = int(np.count_nonzero(true_ids)) + 1
    joint = np.bincount(pred_index * n_true + true_index, minlength=n_pred * n_true).reshape(n_pred, n_true)
    pred_area = joint.sum(axis=1)[1:, None]
    true_area = joint.sum(axis=0)[None, 1:]
    inter = joint[1:, 1:]
    union = pred_area + true_area - inter
    return np.divide(inter, union, out=np.zeros(inter.shape, dtype=np.float64), where=union > 0)


@dataclass(frozen=True)
class ObjectMatch:
    """Outcome of a one-to-one matching of predicted to true objects."""

    true_positives: int
    false_positives: int
    false_negatives: int
    mean_matched_iou: float

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return 1.0 if found == 0 and self.false_negatives == 0 else _ratio(self.true_positives, found)

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return 1.0 if actual == 0 and self.false_positives == 0 else _ratio(self.true_positives, actual)

    @property
    def f1(self) -> float:
        errors = self.false_positives + self.false_negatives
        if self.true_positives == 0:
            return 1.0 if errors == 0 else 0.0
        return 2.0 * self.true_positives / (2.0 * self.true_positives + errors)

    @property
    def average_precision(self) -> float:
        """TP / (TP + FP + FN): the Data Science Bowl 2018 score at one threshold."""
        total = self.true_positives + self.false_positives + self.false_negatives
        return 1.0 if total == 0 else self.true_positives / total


def match_objects(pred_labels: np.ndarray, true_labels: np.ndarray, threshold: float = 0.5) -> ObjectMatch:
    """Match objects one-to-one maximising total IoU; pairs below ``threshold`` do not count.

    At threshold >= 0.5 a match is unique anyway (two objects cannot both overlap one by more than
    half); the Hungarian assignment keeps lower thresholds correct as well.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    scores = iou_matrix(pred_labels, true_labels)
    n_pred, n_true = scores.shape
    if n_pred == 0 or n_true == 0:
        return ObjectMatch(0, n_pred, n_true, 0.0)
    rows, cols = linear_sum_assignment(scores, maximize=True)
    matched = scores[rows, cols]
    matched = matched[matched >= threshold]
    tp = int(matched.size)
    return ObjectMatch(tp, n_pred - tp, n_true - tp, float(matched.mean()) if tp else 0.0)


def object_f1(pred_labels: np.ndarray, true_labels: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of object detection: instances count as found when matched at IoU >= ``threshold``."""
    return match_objects(pred_labels, true_labels, threshold).f1


def _binary_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if pred.shape != true.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {true.shape}")
    return np.asarray(pred) != 0, np.asarray(true) != 0


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
