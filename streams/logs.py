"""Structured logs: one JSON object per line, one line per event of note.

Agents log through :func:`log_event` with a short event name and flat fields
(``{"event": "batch", "agent": "segment", "size": 8, ...}``), which a log shipper can index
without parsing prose. Faust's and aiokafka's own records go through the same formatter.

>>> import io, json, logging
>>> stream = io.StringIO()
>>> handler = logging.StreamHandler(stream)
>>> handler.setFormatter(JsonFormatter())
>>> logger = logging.getLogger("doctest.logs")
>>> logger.addHandler(handler); logger.propagate = False; logger.setLevel(logging.INFO)
>>> log_event(logger, "batch", agent="segment", size=8)
>>> record = json.loads(stream.getvalue())
>>> record["event"], record["agent"], record["size"], record["level"]
('batch', 'segment', 8, 'INFO')
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "log_event", "logging_config"]

_FIELDS = "ds_fields"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, event, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, _FIELDS, {})
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
        }
        if fields:
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with ``fields`` as one structured line."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS: {"event": event, **fields}})


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that sends every record to stderr as JSON."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        # aiokafka logs every retried request at INFO; its warnings are what an operator needs.
        "loggers": {"aiokafka": {"level": "WARNING"}},
    }
