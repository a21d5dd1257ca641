"""Drift signals: turn one event into named scalar values; one kind of signal per module."""

from streams.drift.signals.fingerprint import LatentReference, reconstruction_value
from streams.drift.signals.image_stats import IMAGE_STAT_FIELDS, image_stat_values
from streams.drift.signals.labels import label_values
from streams.drift.signals.prediction import prediction_values

__all__ = [
    "IMAGE_STAT_FIELDS",
    "LatentReference",
    "image_stat_values",
    "label_values",
    "prediction_values",
    "reconstruction_value",
]
