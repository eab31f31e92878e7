"""Kibana saved objects (``deploy/kibana/newswire.ndjson``) imported through Kibana's API."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import structlog

from pipeline.errors import ConfigError, SearchBackendError
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
IMPORT_PATH = "/api/saved_objects/_import"
#: Kibana answers 503 while it starts, and a proxy in front may answer 502/504.
_RETRY_STATUSES = frozenset({502, 503, 504})


def saved_objects_file() -> Path:
    """``NEWSWIRE_KIBANA_OBJECTS``, else ``deploy/kibana/newswire.ndjson`` of this checkout."""
    configured = os.environ.get("NEWSWIRE_KIBANA_OBJECTS")
    path = Path(configured) if configured else REPO_ROOT / "deploy" / "kibana" / "newswire.ndjson"
    if not path.is_file():
        raise ConfigError(f"Kibana saved objects not found at {path}; set NEWSWIRE_KIBANA_OBJECTS")
    return path


def _auth_headers(settings: Settings) -> tuple[dict[str, str], httpx.BasicAuth | None]:
    """API key if set, else basic auth if a user is set, else nothing."""
    if settings.elasticsearch_api_key is not None:
        key = settings.elasticsearch_api_key.get_secret_value()
        return {"Authorization": f"ApiKey {key}"}, None
    if settings.elasticsearch_username:
        password = (
            settings.elasticsearch_password.get_secret_value()
            if settings.elasticsearch_password is not None
            else ""
        )
        return {}, httpx.BasicAuth(settings.elasticsearch_username, password)
    return {}, None


def _public_url(url: str) -> str:
    """The URL without any user-info, safe to put in a message."""
    return str(httpx.URL(url).copy_with(username=None, password=None))


def _reason(response: httpx.Response) -> str:
    """Kibana's own message when it sent one, else the start of the body."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return str(body)[:300]


def _import_errors(body: dict[str, Any]) -> str:
    """One line per failed object: ``type/id: error type (details)``."""
    lines = []
    for item in body.get("errors") or []:
        error = item.get("error") or {}
        kind = error.get("type", "unknown")
        detail = ""
        if kind == "missing_references":
            missing = ", ".join(
                f"{ref.get('type')}/{ref.get('id')}" for ref in error.get("references") or []
            )
            detail = f" ({missing})"
        elif error.get("message"):
            detail = f" ({error['message']})"
        lines.append(f"{item.get('type')}/{item.get('id')}: {kind}{detail}")
    return "; ".join(lines) or "no details"


async def import_saved_objects(
    settings: Settings,
    path: Path | None = None,
    *,
    attempts: int = 5,
    retry_delay: float = 3.0,
    request_timeout: float = 60.0,
) -> int:
    """Import the saved objects into Kibana (overwriting ours); returns how many it imported.

    Raises :class:`ConfigError` when no Kibana URL or objects file is configured and
    :class:`SearchBackendError` when Kibana cannot be reached or refuses the import.
    Kibana still starting (503, connection refused) is retried ``attempts`` times.
    """
    if not settings.kibana_url:
        raise ConfigError("no Kibana URL: set NEWSWIRE_KIBANA_URL")
    objects = path or saved_objects_file()
    try:
        payload = objects.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read Kibana saved objects {objects}: {exc}") from exc
    url = settings.kibana_url.rstrip("/") + IMPORT_PATH
    shown = _public_url(url)
    headers, auth = _auth_headers(settings)
    headers["kbn-xsrf"] = "newswire"
    files = {"file": (objects.name, payload, "application/ndjson")}

    response: httpx.Response | None = None
    async with httpx.AsyncClient(timeout=request_timeout, auth=auth) as client:
        for attempt in range(1, max(attempts, 1) + 1):
            try:
                response = await client.post(
                    url, params={"overwrite": "true"}, headers=headers, files=files
                )
            except httpx.TransportError as exc:
                if attempt >= attempts:
                    raise SearchBackendError(
                        f"cannot reach Kibana at {shown}: {type(exc).__name__}: {exc}"
                    ) from exc
                log.info("kibana.retry", url=shown, attempt=attempt, reason=type(exc).__name__)
            else:
                if response.status_code not in _RETRY_STATUSES or attempt >= attempts:
                    break
                log.info("kibana.retry", url=shown, attempt=attempt, status=response.status_code)
            await asyncio.sleep(retry_delay * attempt)
    assert response is not None  # the loop either set it or raised

    if response.status_code in (401, 403):
        raise SearchBackendError(
            f"Kibana at {shown} refused the credentials (HTTP {response.status_code}): "
            "set NEWSWIRE_ELASTICSEARCH_API_KEY or NEWSWIRE_ELASTICSEARCH_USERNAME/PASSWORD "
            "to a user allowed to manage saved objects"
        )
    if response.status_code >= 300:
        raise SearchBackendError(
            f"Kibana at {shown} failed the saved objects import "
            f"(HTTP {response.status_code}): {_reason(response)}"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise SearchBackendError(f"Kibana at {shown} answered the import with non-JSON") from exc
    if not isinstance(body, dict):
        raise SearchBackendError(f"Kibana at {shown} answered the import with {body!r:.200}")
    count = int(body.get("successCount") or 0)
    if not body.get("success", False):
        raise SearchBackendError(
            f"Kibana imported {count} saved object(s) from {objects.name} but refused others: "
            f"{_import_errors(body)}"
        )
    log.info("kibana.imported", url=shown, objects=count, file=str(objects))
    return count
