"""Sequential change detectors with explicit, JSON-serialisable state; one per module."""

from streams.drift.detectors.base import DETECTOR_KINDS, Detector, detector_from_state
from streams.drift.detectors.cusum import CUSUM
from streams.drift.detectors.page_hinkley import PageHinkley

__all__ = ["CUSUM", "DETECTOR_KINDS", "Detector", "PageHinkley", "detector_from_state"]
