"""Random MinHash signatures for the story-index tests (the unit tests of the index and the
story table on real Kafka), as fixtures: ``random_sig()`` is a signature of independent
values, ``near(sig, changed)`` a copy with that share of its values replaced (estimated
Jaccard ``1 - changed``). Both draw from one generator seeded per test, so a test's
signatures do not depend on which tests ran before it. ``story_versions(seed, count,
length)`` gives texts of one made-up story, near duplicates of each other."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest

from pipeline.enrich.dedup import NUM_PERM

Signature = np.ndarray


@pytest.fixture
def signature_rng() -> np.random.Generator:
    """The seeded generator behind ``random_sig`` and ``near``."""
    return np.random.default_rng(7)


@pytest.fixture
def random_sig(signature_rng: np.random.Generator) -> Callable[[], Signature]:
    """``random_sig()``: a signature of NUM_PERM independent 32-bit values."""

    def random_sig() -> Signature:
        return signature_rng.integers(0, 2**32, size=NUM_PERM, dtype=np.uint32)

    return random_sig


@pytest.fixture
def near(
    signature_rng: np.random.Generator, random_sig: Callable[[], Signature]
) -> Callable[..., Signature]:
    """``near(sig, changed=0.3)``: a copy of ``sig`` with ``changed`` of its values replaced."""

    def near(sig: Signature, changed: float = 0.3) -> Signature:
        out = sig.copy()
        where = signature_rng.choice(NUM_PERM, size=int(NUM_PERM * changed), replace=False)
        out[where] = random_sig()[where]
        return out

    return near


def story_versions(seed: int, count: int, length: int = 120) -> list[str]:
    """``count`` versions of one made-up story of ``length`` words, each with a tenth of
    them replaced: near duplicates of each other, none an exact copy."""
    rng = random.Random(seed)
    words = [
        "".join(rng.choices("bcdfghklmnprstvz", k=3)) + rng.choice("aeiou") for _ in range(900)
    ]
    base = rng.choices(words, k=length)
    out = []
    for _ in range(count):
        text = list(base)
        for i in rng.sample(range(len(text)), length // 10):
            text[i] = rng.choice(words)
        out.append(" ".join(text))
    return out


@pytest.fixture(scope="session", name="story_versions")
def story_versions_fixture() -> Callable[[int, int, int], list[str]]:
    return story_versions
