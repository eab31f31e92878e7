"""The entity recogniser behind the enricher: CoreNLP over HTTP (default) or spaCy in-process.

Both give :class:`~pipeline.enrich.entities.Span` lists (label + character offsets) per
text; everything after that (cleaning, canonical names) is shared.

One rule for every entry point (docs/architecture.md, "Entity recogniser"): the recogniser
is ``NEWSWIRE_NER_BACKEND`` (default CoreNLP at ``NEWSWIRE_CORENLP_URL`` or the local
stack's port). The worker waits for that server when it is down. A one-off run
(``newswire enrich``, ``make eval``) uses :func:`recogniser_for_run`: the server that
answers, or one it starts for the run; when CoreNLP cannot be had it fails with a message
naming what is missing, and falls back to spaCy only when the caller allows it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from pipeline.enrich.entities import Span
from pipeline.errors import MissingDependencyError, NewswireError
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

#: How to get CoreNLP, for the message when it cannot be had.
CORENLP_HINT = (
    "set NEWSWIRE_CORENLP_URL to a running CoreNLP server, or install Java 17-25 and Maven "
    "(apt-get install openjdk-21-jdk-headless maven) so that the local server can be "
    "resolved (`newswire stack up`, once) and started for the run; or choose spaCy on "
    "purpose with --recogniser spacy / NEWSWIRE_NER_BACKEND=spacy (entity F1 0.71 against "
    "0.93 for CoreNLP on CoNLL-2003 dev), or --allow-fallback to use spaCy only when "
    "CoreNLP cannot be had"
)


class Recogniser(Protocol):
    """Entity spans for a batch of texts, one list per text, same order."""

    name: str

    @property
    def model(self) -> str:
        """Version and model, as written into each record's ``recogniser_model``."""
        ...

    def spans(self, texts: Sequence[str]) -> list[list[Span]]: ...


def corenlp_url(settings: Settings) -> str:
    """``NEWSWIRE_CORENLP_URL`` (one URL or a comma-separated list), or the local stack's
    CoreNLP server."""
    return settings.corenlp_url or f"http://127.0.0.1:{settings.corenlp_port}/"


def make_recogniser(settings: Settings) -> Recogniser:
    """The recogniser ``NEWSWIRE_NER_BACKEND`` names, for the worker.

    The worker never falls back: while CoreNLP is down it waits and retries, so that every
    article gets the same recogniser.
    """
    if settings.ner_backend == "spacy":
        from pipeline.enrich.nlp import SpacyRecogniser

        return SpacyRecogniser()
    return _corenlp(settings, corenlp_url(settings))


def _corenlp(settings: Settings, url: str) -> Recogniser:
    from pipeline.enrich.corenlp import CoreNLPRecogniser

    return CoreNLPRecogniser(
        url,
        timeout=settings.corenlp_timeout,
        model=settings.corenlp_model,
        resolve_seconds=settings.corenlp_resolve_seconds,
    )


# -- one-off runs: pure choice, then I/O -------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """What a one-off run does: use spaCy, use the server at ``url``, start the local server,
    or nothing works (``problem`` says why)."""

    action: Literal["spacy", "server", "start_local", "missing"]
    url: str | None = None
    problem: str = ""


def choose_recogniser(
    backend: str,
    configured_url: str | None,
    local_url: str,
    *,
    answers: bool,
    can_start_local: bool,
) -> Choice:
    """The recogniser of a one-off run, from the facts (pure).

    ``answers``: whether the server that would be used (the configured one, else the local
    port) answers. A configured URL is never replaced by a local server: that would hide a
    broken setting.
    """
    if backend == "spacy":
        return Choice("spacy")
    url = configured_url or local_url
    if answers:
        return Choice("server", url)
    if configured_url:
        return Choice("missing", url, f"no CoreNLP server answers at {url} (NEWSWIRE_CORENLP_URL)")
    if can_start_local:
        return Choice("start_local", url)
    return Choice("missing", url, f"no CoreNLP server answers at {url} and none is started here")


def missing_message(problem: str, *, fallback: bool) -> str:
    """The loud stderr message when CoreNLP cannot be had."""
    then = (
        "Falling back to spaCy (--allow-fallback): records say recogniser=spacy."
        if fallback
        else "Nothing was enriched."
    )
    return (
        f"CoreNLP, the entity recogniser the worker uses, is not available: {problem}.\n"
        f"To get it: {CORENLP_HINT}.\n{then}"
    )


class RecogniserMissingError(MissingDependencyError):
    """CoreNLP cannot be had for a one-off run, and falling back to spaCy was not allowed."""

    def __init__(self, problem: str) -> None:
        super().__init__("CoreNLP (the entity recogniser the worker uses)", problem)
        self.problem = problem

    def __str__(self) -> str:
        return missing_message(self.problem, fallback=False)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def recogniser_for_run(
    settings: Settings,
    *,
    start_local: Callable[[], contextlib.AbstractContextManager[str]] | None = None,
    allow_fallback: bool = False,
    say: Callable[[str], None] = _stderr,
) -> Iterator[Recogniser]:
    """The recogniser of a one-off run (``newswire enrich``, ``make eval``).

    ``start_local`` starts the local CoreNLP server and yields its URL (the caller's local
    stack, stopped on exit); runtime code never imports the stack itself. Raises
    :class:`RecogniserMissingError` when CoreNLP cannot be had and ``allow_fallback`` is off.
    """
    from pipeline.enrich.corenlp import CoreNLPRecogniser

    url = corenlp_url(settings)
    answers = settings.ner_backend == "corenlp" and CoreNLPRecogniser(url).available()
    choice = choose_recogniser(
        settings.ner_backend,
        settings.corenlp_url,
        url,
        answers=answers,
        can_start_local=start_local is not None,
    )
    problem = choice.problem
    if choice.action == "spacy":
        from pipeline.enrich.nlp import SpacyRecogniser

        yield SpacyRecogniser()
        return
    if choice.action == "server":
        log.info("ner.recogniser", backend="corenlp", url=url)
        yield _corenlp(settings, url)
        return
    if choice.action == "start_local" and start_local is not None:
        with contextlib.ExitStack() as stack:
            began = time.monotonic()
            try:
                say(f"no CoreNLP server answers at {url}: starting one for this run")
                started = stack.enter_context(start_local())
            except NewswireError as exc:
                problem = f"no CoreNLP server answers at {url}, and starting one failed: {exc}"
            else:
                seconds = time.monotonic() - began
                say(f"CoreNLP ready at {started} in {seconds:.1f} s; stopped when the run ends")
                log.info("ner.corenlp_started", url=started, seconds=round(seconds, 1))
                yield _corenlp(settings, started)
                return
    if not allow_fallback:
        raise RecogniserMissingError(problem)
    say(missing_message(problem, fallback=True))
    log.warning("ner.fallback_to_spacy", reason=problem)
    from pipeline.enrich.nlp import SpacyRecogniser

    yield SpacyRecogniser()
