"""Dice, IoU and object F1: bounds, symmetry, and the cases that tell them apart."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from models.metrics import dice, iou, iou_matrix, match_objects, object_f1

masks = arrays(np.bool_, (12, 12))
label_images = arrays(np.int32, (10, 10), elements=st.integers(0, 4))


@given(masks, masks)
@settings(max_examples=80, deadline=None)
def test_dice_and_iou_bounds_symmetry_and_relation(a: np.ndarray, b: np.ndarray) -> None:
    d, j = dice(a, b), iou(a, b)
    assert 0.0 <= j <= d <= 1.0
    assert d == pytest.approx(dice(b, a)) and j == pytest.approx(iou(b, a))
    assert d == pytest.approx(2 * j / (1 + j))


@given(label_images, label_images)
@settings(max_examples=80, deadline=None)
def test_object_f1_bounds_symmetry_and_identity(a: np.ndarray, b: np.ndarray) -> None:
    f1 = object_f1(a, b)
    assert 0.0 <= f1 <= 1.0
    assert f1 == pytest.approx(object_f1(b, a))
    assert object_f1(a, a) == 1.0


@given(label_images)
@settings(max_examples=40, deadline=None)
def test_object_f1_ignores_label_values(a: np.ndarray) -> None:
    permutation = np.array([0, 17, 3, 250, 9], dtype=np.int32)
    assert object_f1(permutation[a], a) == 1.0


def test_merged_objects_keep_dice_perfect_but_fail_f1() -> None:
    true = np.zeros((20, 50), dtype=np.int32)
    for i in range(3):
        true[5:15, 5 + 13 * i : 18 + 13 * i] = i + 1
    merged = (true > 0).astype(np.int32)
    assert dice(merged, true) == 1.0
    assert object_f1(merged, true) == 0.0  # the blob overlaps each nucleus at IoU 1/3
    match = match_objects(merged, true, threshold=0.3)
    assert (match.true_positives, match.false_positives, match.false_negatives) == (1, 0, 2)
    assert match.f1 == pytest.approx(0.5)


def test_threshold_and_counts() -> None:
    true = np.zeros((10, 10), dtype=np.int32)
    true[0:4, 0:4] = 1
    true[6:10, 6:10] = 2
    pred = np.zeros_like(true)
    pred[0:4, 0:3] = 5  # IoU 0.75 with object 1
    pred[6:10, 6:8] = 6  # IoU 0.5 with object 2
    pred[0:2, 8:10] = 7  # false positive
    match = match_objects(pred, true)
    assert (match.true_positives, match.false_positives, match.false_negatives) == (2, 1, 0)
    assert match.precision == pytest.approx(2 / 3) and match.recall == 1.0
    assert match.mean_matched_iou == pytest.approx(0.625)
    assert match.average_precision == pytest.approx(2 / 3)
    assert match_objects(pred, true, threshold=0.6).true_positives == 1


def test_iou_matrix_values() -> None:
    true = np.array([[1, 1, 0, 2]])
    pred = np.array([[4, 0, 0, 4]])
    assert iou_matrix(pred, true) == pytest.approx(np.array([[1 / 3, 1 / 2]]))
    assert iou_matrix(np.ones((2, 2), dtype=int), np.ones((2, 2), dtype=int)).tolist() == [[1.0]]


def test_empty_cases() -> None:
    empty = np.zeros((4, 4), dtype=np.int32)
    full = np.ones((4, 4), dtype=np.int32)
    assert dice(empty, empty) == iou(empty, empty) == object_f1(empty, empty) == 1.0
    assert dice(full, empty) == iou(full, empty) == object_f1(full, empty) == object_f1(empty, full) == 0.0
    assert match_objects(empty, full).recall == 0.0


def test_shape_mismatch_and_bad_threshold() -> None:
    with pytest.raises(ValueError):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        object_f1(np.zeros((2, 2), dtype=int), np.zeros((3, 2), dtype=int))
    with pytest.raises(ValueError):
        object_f1(np.zeros((2, 2), dtype=int), np.zeros((2, 2), dtype=int), threshold=0.0)
