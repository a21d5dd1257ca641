"""Held-out scoring used by early stopping, int8 promotion and the trainer's gate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from models.train_eval import evaluate_segmenter


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    yy, xx = np.mgrid[:64, :64]
    mask = np.zeros((64, 64), np.int32)
    mask[(yy - 20) ** 2 + (xx - 20) ** 2 < 64] = 1
    mask[(yy - 44) ** 2 + (xx - 44) ** 2 < 64] = 2
    return [(mask.astype(np.uint16) * 1000, mask), (mask.T.astype(np.uint16) * 1000, mask.T.copy())]


def test_a_perfect_predictor_scores_one_and_an_empty_one_zero() -> None:
    pairs = _pairs()

    def perfect(images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [(image > 0).astype(np.float32) for image in images]

    def empty(images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.zeros(image.shape, np.float32) for image in images]

    assert evaluate_segmenter(perfect, pairs) == {"dice": 1.0, "iou": 1.0, "object_f1": 1.0}
    assert evaluate_segmenter(empty, pairs, objects=False) == {"dice": 0.0, "iou": 0.0}


def test_object_f1_counts_a_missed_nucleus() -> None:
    image, mask = _pairs()[0]

    def misses_one(images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [(mask == 1).astype(np.float32)]

    scores = evaluate_segmenter(misses_one, [(image, mask)])
    assert scores["object_f1"] == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert scores["dice"] == pytest.approx(2 / 3)


def test_no_pairs_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        evaluate_segmenter(lambda images: [], [])
