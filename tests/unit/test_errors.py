import pickle
from pathlib import Path

import pytest

from pipeline.errors import (
    BadInputError,
    FetchError,
    KafkaUnavailableError,
    MissingDependencyError,
    NewswireError,
    PermanentIndexError,
    RetryableError,
    StackError,
)

ERRORS: list[NewswireError] = [
    BadInputError("feed.xml", "unsafe XML"),
    FetchError("https://x.example/rss", "429 Too Many Requests", status=429, retry_after=30.0),
    KafkaUnavailableError("127.0.0.1:1", "refused"),
    MissingDependencyError("spaCy", "pip install 'newswire[nlp]'"),
    PermanentIndexError("abc", "mapper_parsing_exception"),
    RetryableError("busy", retry_after=2.5),
    StackError("kafka did not start", Path("/tmp/kafka.log")),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_survive_pickling_with_their_data(error: NewswireError) -> None:
    """The poller's parse pool sends errors between processes."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_errors_carry_what_callers_need() -> None:
    assert RetryableError("busy", retry_after=2.5).retry_after == 2.5
    fetch = FetchError("u", "r", status=503, retry_after=10)
    assert (fetch.status, fetch.retry_after) == (503, 10)
    assert "newswire stack up" in str(KafkaUnavailableError("h:1", "x"))
