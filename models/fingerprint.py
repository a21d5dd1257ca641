"""Dataset-level fingerprints and nearest lookups in the encoder's latent space (numpy only).

The seed (MLOps for Scarce Image Data) places images and whole datasets in one space: a dataset's
fingerprint is the mean latent of its images. "Which known dataset is this stream closest to?"
is then a nearest-fingerprint lookup, and the training worker's extra data are the labelled images
nearest to the drifted ones.

>>> import numpy as np
>>> prints = fingerprints_by_group(np.array([[0.0, 0.0], [0.0, 2.0], [10.0, 10.0]]), ["a", "a", "b"])
>>> {k: v.tolist() for k, v in prints.items()}
{'a': [0.0, 1.0], 'b': [10.0, 10.0]}
>>> nearest_datasets(np.array([[9.0, 9.0]]), prints)[0].key
'b'
>>> [n.key for n in nearest_images(np.array([0.0, 1.9]), np.array([[0, 0], [0, 2], [9, 9]]), ["x", "y", "z"], k=2)]
['y', 'x']
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Neighbour", "dataset_fingerprint", "fingerprints_by_group", "nearest_datasets", "nearest_images"]


@dataclass(frozen=True)
class Neighbour:
    key: str
    distance: float


def dataset_fingerprint(latents: np.ndarray) -> np.ndarray:
    """The mean latent of a dataset's images ([N, L] -> [L])."""
    latents = _as_matrix(latents)
    if len(latents) == 0:
        raise ValueError("a dataset fingerprint needs at least one latent")
    return np.asarray(latents.mean(axis=0), dtype=np.float64)


def fingerprints_by_group(latents: np.ndarray, groups: Sequence[str]) -> dict[str, np.ndarray]:
    """One fingerprint per group (dataset, instrument, experiment) from per-image latents."""
    latents = _as_matrix(latents)
    if len(latents) != len(groups):
        raise ValueError(f"{len(latents)} latents but {len(groups)} group names")
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    return {group: dataset_fingerprint(latents[idx]) for group, idx in members.items()}


def nearest_datasets(
    latents: np.ndarray, fingerprints: Mapping[str, np.ndarray], k: int = 1
) -> list[Neighbour]:
    """The ``k`` known datasets whose fingerprints are closest to the mean of ``latents`` ([L] or [N, L])."""
    if not fingerprints:
        raise ValueError("no dataset fingerprints to compare with")
    query = dataset_fingerprint(latents)
    keys = list(fingerprints)
    table = np.stack([np.asarray(fingerprints[key], dtype=np.float64) for key in keys])
    return _nearest(query, table, keys, k)


def nearest_images(query: np.ndarray, latents: np.ndarray, ids: Sequence[str], k: int = 5) -> list[Neighbour]:
    """The ``k`` images (by id) nearest to ``query``; a [N, L] query is reduced to its mean first."""
    table = _as_matrix(latents)
    if len(table) != len(ids):
        raise ValueError(f"{len(table)} latents but {len(ids)} image ids")
    return _nearest(dataset_fingerprint(query), table, list(ids), k)


def _nearest(query: np.ndarray, table: np.ndarray, keys: list[str], k: int) -> list[Neighbour]:
    if table.shape[1] != query.shape[0]:
        raise ValueError(f"latent sizes differ: query {query.shape[0]}, table {table.shape[1]}")
    distances = np.linalg.norm(table - query, axis=1)
    order = np.argsort(distances, kind="stable")[: max(0, k)]
    return [Neighbour(keys[i], float(distances[i])) for i in order]


def _as_matrix(latents: np.ndarray) -> np.ndarray:
    array = np.asarray(latents, dtype=np.float64)
    if array.ndim == 1:
        return array[None]
    if array.ndim != 2:
        raise ValueError(f"latents must be [L] or [N, L], got shape {array.shape}")
    return array
