"""The error family of the drift package.

The drift agent sends an event that raises :class:`DriftInputError` to the dead-letter queue with the
message, and refuses to start from a checkpoint that raises :class:`DriftStateError` (starting fresh
would silently re-learn the reference from whatever the stream now carries).
"""

from __future__ import annotations

__all__ = ["DriftError", "DriftInputError", "DriftStateError"]


class DriftError(Exception):
    """Base of every error raised by :mod:`streams.drift`."""


class DriftInputError(DriftError, ValueError):
    """An observation does not fit the instrument's state (e.g. a latent of another length)."""


class DriftStateError(DriftError, ValueError):
    """A checkpoint cannot be restored: unknown format, unknown detector kind, or missing fields."""
