"""Held-out evaluation of a segmenter, whatever runs it (torch during training, onnxruntime when serving).

Torch-free: the function takes a ``predict`` callable (images -> probability maps), so the same
scores decide early stopping, int8 promotion and the trainer's serving-vs-candidate comparison.
Instances come from the binary mask through :func:`models.runners.instances_from_probability`,
the same cut the segment agent makes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from models.metrics import dice, iou, object_f1
from models.runners import THRESHOLD, instances_from_probability

__all__ = ["Pair", "Predict", "evaluate_segmenter"]

Pair = tuple[np.ndarray, np.ndarray]
Predict = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


def evaluate_segmenter(
    predict: Predict, pairs: Sequence[Pair], *, objects: bool = True, threshold: float = THRESHOLD
) -> dict[str, float]:
    """Mean Dice, IoU and (optionally) object F1 at IoU >= 0.5 over ``(image, instance mask)`` pairs.

    Object F1 needs a watershed per image; early stopping can skip it (``objects=False``).
    """
    if not pairs:
        raise ValueError("evaluate_segmenter needs at least one (image, mask) pair")
    probabilities = predict([image for image, _ in pairs])
    scores: dict[str, list[float]] = {"dice": [], "iou": []}
    if objects:
        scores["object_f1"] = []
    for probability, (_, mask) in zip(probabilities, pairs, strict=True):
        foreground = probability > threshold
        scores["dice"].append(dice(foreground, mask))
        scores["iou"].append(iou(foreground, mask))
        if objects:
            scores["object_f1"].append(object_f1(instances_from_probability(probability, threshold), mask))
    return {name: float(np.mean(values)) for name, values in scores.items()}
