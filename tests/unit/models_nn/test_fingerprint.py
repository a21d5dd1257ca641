"""Dataset fingerprints and nearest lookups."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import models.fingerprint as fingerprint
from models.fingerprint import dataset_fingerprint, fingerprints_by_group, nearest_datasets, nearest_images


def test_doctests() -> None:
    assert doctest.testmod(fingerprint).failed == 0


def test_a_stream_is_matched_to_the_dataset_it_was_drawn_from() -> None:
    rng = np.random.default_rng(0)
    centres = {"scope-a": np.zeros(8), "scope-b": np.full(8, 3.0), "scope-c": np.linspace(-3, 3, 8)}
    latents = np.concatenate([c + rng.normal(0, 1, size=(50, 8)) for c in centres.values()])
    groups = [name for name in centres for _ in range(50)]
    prints = fingerprints_by_group(latents, groups)
    stream = centres["scope-c"] + rng.normal(0, 1, size=(20, 8))
    ranked = nearest_datasets(stream, prints, k=3)
    assert ranked[0].key == "scope-c"
    assert [n.distance for n in ranked] == sorted(n.distance for n in ranked)


def test_nearest_images_ranks_by_distance_and_caps_k() -> None:
    latents = np.array([[0.0, 0.0], [5.0, 5.0], [1.0, 0.0]])
    found = nearest_images(np.array([[0.9, 0.1], [1.1, -0.1]]), latents, ["a", "b", "c"], k=10)
    assert [n.key for n in found] == ["c", "a", "b"]
    assert found[0].distance == pytest.approx(0.0)


def test_shape_errors_are_reported() -> None:
    with pytest.raises(ValueError, match="at least one"):
        dataset_fingerprint(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="group names"):
        fingerprints_by_group(np.zeros((3, 2)), ["a"])
    with pytest.raises(ValueError, match="latent sizes differ"):
        nearest_images(np.zeros(3), np.zeros((2, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="no dataset"):
        nearest_datasets(np.zeros(2), {})
