"""Kafka records -> validated records, under the rolling-upgrade rule: fields this version
does not know are dropped (logged and counted), everything else is validated strictly, and
what fails becomes a DLQ record with the reason."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError

from pipeline import metrics
from pipeline.models import RawArticle, drop_unknown_fields
from pipeline.worker.dlq import dlq_record

log = structlog.get_logger(__name__)
#: A batch as the agents hand it over: each record's value and where it came from.
Values = Sequence[tuple[bytes | None, dict[str, Any]]]

RecordT = TypeVar("RecordT", bound=RawArticle)


def _validation_reason(exc: ValidationError) -> str:
    return "invalid record: " + "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
    )


def decode_record(value: bytes | None, model: type[RecordT]) -> tuple[RecordT, list[str]]:
    """A Kafka record as ``model``, and the fields it had that this version does not know.

    The rule for rolling upgrades (docs/architecture.md): unknown fields, at any depth,
    are ignored (dropped before validation), so a newer producer can add fields while
    older workers still run; known fields are validated as strictly as ever. Raises
    :class:`ValidationError` for anything else (not JSON, wrong types, missing id)."""
    try:
        data = json.loads(value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return model.model_validate_json(value or b""), []  # raises, with pydantic's reason
    known, unknown = drop_unknown_fields(model, data)
    return model.model_validate(known), unknown


def decode_batch(
    values: Values, model: type[RecordT], stage: str
) -> tuple[list[tuple[RecordT, bytes | None, dict[str, Any]]], list[dict[str, Any]]]:
    """Records that parse as ``model`` (with their origin), and DLQ records for the rest."""
    decoded: list[tuple[RecordT, bytes | None, dict[str, Any]]] = []
    dead: list[dict[str, Any]] = []
    for value, where in values:
        try:
            record, unknown = decode_record(value, model)
            decoded.append((record, value, where))
            if unknown:
                metrics.WORKER_UNKNOWN_FIELDS.labels(stage).inc()
                log.info("worker.unknown_fields_ignored", stage=stage, id=record.id, fields=unknown)
        except ValidationError as exc:
            metrics.WORKER_BAD_INPUT.labels("invalid_record").inc()
            dead.append(dlq_record(value, _validation_reason(exc), stage, **where))
    return decoded, dead


__all__ = ["Values", "decode_batch", "decode_record"]
