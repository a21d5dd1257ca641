"""Label signals: Dice and IoU of the served model on the images an annotator labelled.

Labels arrive late and rarely, but they are the only signal that sees concept drift (the images
look the same, the right answer changed). Only a drop matters, and it is measured against the first
label scores of the model version (``DriftConfig.label_reference_size``).

>>> label_values(dice=0.8, iou=0.667)
{'label.dice': 0.8, 'label.iou': 0.667}
"""

from __future__ import annotations

import math

from streams.drift.errors import DriftInputError

__all__ = ["label_values"]


def label_values(dice: float, iou: float) -> dict[str, float]:
    """The label signals of one scored image; refuses scores outside [0, 1]."""
    for name, score in (("dice", dice), ("iou", iou)):
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise DriftInputError(f"{name} score {score!r} is not a number in [0, 1]; check the label scorer")
    return {"label.dice": float(dice), "label.iou": float(iou)}
