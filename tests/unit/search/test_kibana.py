"""Kibana saved objects: the shipped ndjson file, and the import against a loopback server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError, NewswireError, SearchBackendError
from pipeline.search.kibana import import_saved_objects, saved_objects_file
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
NDJSON = ROOT / "deploy" / "kibana" / "newswire.ndjson"
MAPPINGS = ROOT / "deploy" / "elasticsearch" / "component-mappings.json"
STORIES = ROOT / "deploy" / "elasticsearch" / "stories-index.json"
TRENDS = ROOT / "deploy" / "elasticsearch" / "trends-index.json"
ALIAS = "newswire-articles"
STORY_INDEX = "newswire-stories"
TREND_INDEX = "newswire-trends"


# -- the shipped file ----------------------------------------------------------------------


def _objects() -> list[dict[str, Any]]:
    lines = NDJSON.read_text(encoding="utf-8").splitlines()
    objects = []
    for number, line in enumerate(lines, start=1):
        assert line.strip(), f"line {number} is empty"
        try:
            objects.append(json.loads(line))
        except json.JSONDecodeError as exc:
            pytest.fail(f"{NDJSON.name} line {number} is not JSON: {exc}")
    return objects


def _mapped_fields(data_view: str = ALIAS) -> dict[str, str]:
    """Dotted field path -> type, sub-fields (``title.raw``) included, of the articles'
    mapping, the stories index's or the trends index's."""
    if data_view in (STORY_INDEX, TREND_INDEX):
        path = STORIES if data_view == STORY_INDEX else TRENDS
        properties = json.loads(path.read_text())["mappings"]["properties"]
    else:
        properties = json.loads(MAPPINGS.read_text())["template"]["mappings"]["properties"]
    found: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            found[path] = spec.get("type", "object")
            walk(spec.get("properties", {}), f"{path}.")
            for sub, sub_spec in spec.get("fields", {}).items():
                found[f"{path}.{sub}"] = sub_spec["type"]

    walk(properties, "")
    return found


def _lens_columns(obj: dict[str, Any]) -> list[dict[str, Any]]:
    layers = obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
    return [column for layer in layers.values() for column in layer["columns"].values()]


def test_every_line_is_a_saved_object() -> None:
    objects = _objects()
    assert objects, "no saved objects"
    for obj in objects:
        assert {"type", "id", "attributes", "references"} <= obj.keys(), obj.get("id")
        assert obj["attributes"].get("title"), f"{obj['id']} has no title"


def test_ids_are_unique() -> None:
    ids = [(obj["type"], obj["id"]) for obj in _objects()]
    assert len(ids) == len(set(ids))
    assert len({i for _, i in ids}) == len(ids), "ids are unique across types too"


def test_references_resolve_inside_the_file() -> None:
    objects = _objects()
    known = {(obj["type"], obj["id"]) for obj in objects}
    for obj in objects:
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), f"{obj['id']}: duplicate reference names"
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in known, f"{obj['id']} -> {ref} is not in the file"


def test_expected_objects_are_shipped() -> None:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for obj in _objects():
        by_type.setdefault(obj["type"], []).append(obj)
    assert set(by_type) == {"index-pattern", "search", "lens", "dashboard"}

    views = {view["id"]: view for view in by_type["index-pattern"]}
    assert set(views) == {ALIAS, STORY_INDEX, TREND_INDEX}
    assert views[ALIAS]["attributes"]["title"] == ALIAS
    assert views[ALIAS]["attributes"]["timeFieldName"] == "published_at"
    assert views[STORY_INDEX]["attributes"]["timeFieldName"] == "first_seen"
    searches = {s["id"]: s for s in by_type["search"]}
    stories = searches["newswire-search-stories"]
    assert stories["references"][0]["id"] == STORY_INDEX
    assert {"article_count", "sources", "first_source"} <= set(stories["attributes"]["columns"])
    assert views[TREND_INDEX]["attributes"]["timeFieldName"] == "hour"
    rising = searches["newswire-search-trends"]
    assert rising["references"][0]["id"] == TREND_INDEX
    assert rising["attributes"]["sort"] == [["score", "desc"]]
    lenses = {lens["id"]: lens for lens in by_type["lens"]}
    for panel, facet in (("people", "person"), ("topics", "topic")):
        lens = lenses[f"newswire-lens-rising-{panel}"]
        assert lens["references"][0]["id"] == TREND_INDEX
        assert lens["attributes"]["state"]["query"]["query"] == f'facet : "{facet}"'
        layers = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
        (layer,) = layers.values()
        terms = layer["columns"][layer["columnOrder"][0]]
        assert terms["operationType"] == "terms" and terms["sourceField"] == "value"
        # ranked by the score `newswire trends` computes, not by a count of their own
        order = layer["columns"][terms["params"]["orderBy"]["columnId"]]
        assert order["sourceField"] == "score" and order["operationType"] == "max"
        assert terms["params"]["orderDirection"] == "desc"

    used = {c.get("sourceField") for lens in by_type["lens"] for c in _lens_columns(lens)}
    for facet in (
        "entities.person",
        "entities.organization",
        "entities.location",
        "topics.label",
        "source.name",
        "language",
        "published_at",
    ):
        assert facet in used, f"no visualization uses {facet}"


def test_dashboard_panels_match_references() -> None:
    objects = _objects()
    (dashboard,) = [obj for obj in objects if obj["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {ref["name"]: ref for ref in dashboard["references"]}
    shown = set()
    for panel in panels:
        ref = refs.get(f"{panel['panelIndex']}:{panel['panelRefName']}")
        assert ref is not None, f"panel {panel['panelIndex']} has no reference"
        assert ref["type"] == panel["type"]
        shown.add(ref["id"])
        grid = panel["gridData"]
        assert grid["i"] == panel["panelIndex"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 48, "dashboard grid is 48 wide"
    others = {obj["id"] for obj in objects if obj["type"] in ("lens", "search")}
    assert others <= shown, f"not on the dashboard: {others - shown}"


def test_fields_used_exist_in_the_mapping() -> None:
    for obj in _objects():
        views = [r["id"] for r in obj["references"] if r["type"] == "index-pattern"]
        fields = _mapped_fields(views[0] if views else obj["id"])
        attributes = obj["attributes"]
        used: list[str] = []
        if obj["type"] == "index-pattern":
            used.append(attributes["timeFieldName"])
        elif obj["type"] == "search":
            used += attributes["columns"]
            used += [name for name, _ in attributes["sort"]]
        elif obj["type"] == "lens":
            for column in _lens_columns(obj):
                if column.get("sourceField") not in (None, "___records___"):
                    used.append(column["sourceField"])
                    if column["operationType"] in ("terms", "date_histogram"):
                        want = "date" if column["operationType"] == "date_histogram" else "keyword"
                        assert fields.get(column["sourceField"]) == want, (
                            f"{obj['id']}: {column['sourceField']} is not a {want} field"
                        )
        for name in used:
            assert name in fields, f"{obj['id']} uses {name}, not in its index's mapping"


def test_saved_objects_file_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NEWSWIRE_KIBANA_OBJECTS", raising=False)
    assert saved_objects_file() == NDJSON
    other = tmp_path / "objects.ndjson"
    other.write_text("{}\n")
    monkeypatch.setenv("NEWSWIRE_KIBANA_OBJECTS", str(other))
    assert saved_objects_file() == other
    monkeypatch.setenv("NEWSWIRE_KIBANA_OBJECTS", str(tmp_path / "missing.ndjson"))
    with pytest.raises(ConfigError, match="NEWSWIRE_KIBANA_OBJECTS"):
        saved_objects_file()


# -- the import, against a loopback stand-in for Kibana ------------------------------------


@dataclass
class Seen:
    """One request the stand-in received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    parts: dict[str, tuple[str | None, bytes]]


@dataclass
class FakeKibana:
    """Answers each request with the next (status, body) of ``answers``."""

    url: str
    answers: list[tuple[int, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert message.is_multipart(), "the import must be multipart/form-data"
    parts: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        parts[str(name)] = (part.get_filename(), payload)
    return parts


@pytest.fixture
def kibana() -> Iterator[FakeKibana]:
    fake = FakeKibana(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            split = urlsplit(self.path)
            fake.seen.append(
                Seen(
                    method="POST",
                    path=split.path,
                    query=parse_qs(split.query),
                    headers=self.headers,
                    parts=_multipart(self.headers.get("Content-Type", ""), body),
                )
            )
            status, answer = fake.answers.pop(0) if fake.answers else (500, {"message": "?"})
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _settings(url: str, **auth: Any) -> Settings:
    values: dict[str, Any] = {
        "kibana_url": url,
        "elasticsearch_api_key": None,
        "elasticsearch_username": None,
        "elasticsearch_password": None,
    }
    values.update(auth)
    return Settings(**values)


async def test_import_posts_the_ndjson_like_kibana_wants(kibana: FakeKibana) -> None:
    count = len(_objects())
    kibana.answers.append((200, {"success": True, "successCount": count, "successResults": []}))
    settings = _settings(
        kibana.url + "/", elasticsearch_username="elastic", elasticsearch_password="s3cret"
    )

    assert await import_saved_objects(settings, NDJSON) == count

    (request,) = kibana.seen
    assert request.path == "/api/saved_objects/_import"
    assert request.query == {"overwrite": ["true"]}
    assert request.headers.get("kbn-xsrf")
    assert request.headers.get("Authorization", "").startswith("Basic ")
    filename, payload = request.parts["file"]
    assert filename == "newswire.ndjson"
    assert payload == NDJSON.read_bytes()


async def test_import_prefers_the_api_key(kibana: FakeKibana) -> None:
    kibana.answers.append((200, {"success": True, "successCount": 3}))
    settings = _settings(
        kibana.url,
        elasticsearch_api_key=SecretStr("a2V5"),
        elasticsearch_username="elastic",
        elasticsearch_password=SecretStr("pw"),
    )
    assert await import_saved_objects(settings, NDJSON) == 3
    assert kibana.seen[0].headers.get("Authorization") == "ApiKey a2V5"


async def test_import_without_credentials_sends_none(kibana: FakeKibana) -> None:
    kibana.answers.append((200, {"success": True, "successCount": 1}))
    assert await import_saved_objects(_settings(kibana.url), NDJSON) == 1
    assert kibana.seen[0].headers.get("Authorization") is None


async def test_import_errors_name_the_objects(kibana: FakeKibana) -> None:
    kibana.answers.append(
        (
            200,
            {
                "success": False,
                "successCount": 9,
                "errors": [
                    {
                        "id": "newswire-dashboard",
                        "type": "dashboard",
                        "error": {
                            "type": "missing_references",
                            "references": [{"type": "lens", "id": "gone"}],
                        },
                    }
                ],
            },
        )
    )
    with pytest.raises(SearchBackendError) as info:
        await import_saved_objects(_settings(kibana.url), NDJSON)
    message = str(info.value)
    assert "dashboard/newswire-dashboard" in message
    assert "missing_references" in message
    assert "lens/gone" in message


async def test_bad_request_is_a_clear_error(kibana: FakeKibana) -> None:
    kibana.answers.append((400, {"statusCode": 400, "message": "Invalid file extension .txt"}))
    with pytest.raises(SearchBackendError, match=r"HTTP 400.*Invalid file extension"):
        await import_saved_objects(_settings(kibana.url), NDJSON)


async def test_refused_credentials_are_not_printed(kibana: FakeKibana) -> None:
    kibana.answers.append((401, {"statusCode": 401, "message": "Unauthorized"}))
    settings = _settings(
        kibana.url, elasticsearch_username="elastic", elasticsearch_password="hunter2-secret"
    )
    with pytest.raises(SearchBackendError, match="refused the credentials") as info:
        await import_saved_objects(settings, NDJSON)
    assert "hunter2-secret" not in str(info.value)
    assert isinstance(info.value, NewswireError)


async def test_kibana_starting_is_retried(kibana: FakeKibana) -> None:
    kibana.answers += [
        (503, {"message": "Kibana server is not ready yet"}),
        (200, {"success": True, "successCount": 2}),
    ]
    settings = _settings(kibana.url)
    assert await import_saved_objects(settings, NDJSON, attempts=3, retry_delay=0.0) == 2
    assert len(kibana.seen) == 2


async def test_unreachable_kibana_is_a_clear_error() -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = _settings(f"http://127.0.0.1:{port}")
    with pytest.raises(SearchBackendError, match="cannot reach Kibana"):
        await import_saved_objects(settings, NDJSON, attempts=2, retry_delay=0.0)


async def test_no_kibana_url_is_a_config_error() -> None:
    settings = _settings(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="NEWSWIRE_KIBANA_URL"):
        await import_saved_objects(settings, NDJSON)
