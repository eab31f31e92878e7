"""Random MinHash signatures for the story-index tests (the unit tests of the index and the
story table on real Kafka), as fixtures: ``random_sig()`` is a signature of independent
values, ``near(sig, changed)`` a copy with that share of its values replaced (estimated
Jaccard ``1 - changed``). Both draw from one generator seeded per test, so a test's
signatures do not depend on which tests ran before it."""

from __future__ import annotations

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
