"""Which entity recogniser the settings give (no server, no model loaded)."""

from __future__ import annotations

import socket

from pipeline.enrich.corenlp import CoreNLPRecogniser
from pipeline.enrich.nlp import SpacyRecogniser
from pipeline.enrich.recogniser import corenlp_url, make_recogniser
from pipeline.settings import Settings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_backend_setting_picks_the_recogniser() -> None:
    assert isinstance(make_recogniser(Settings(ner_backend="spacy")), SpacyRecogniser)
    corenlp = make_recogniser(Settings(corenlp_port=_closed_port()))
    assert isinstance(corenlp, CoreNLPRecogniser)  # the worker: no fallback, it waits


def test_enrich_without_servers_falls_back_to_spacy_but_not_from_a_named_server() -> None:
    port = _closed_port()
    local = Settings(corenlp_port=port)
    assert corenlp_url(local) == f"http://127.0.0.1:{port}/"
    assert isinstance(make_recogniser(local, fallback_to_spacy=True), SpacyRecogniser)
    named = Settings(corenlp_url=f"http://127.0.0.1:{port}/")
    assert isinstance(make_recogniser(named, fallback_to_spacy=True), CoreNLPRecogniser)
