"""What the fuzz tests (tests/test_fuzz_*.py) share: their budget, a hang watchdog, hostile values.

Every fuzz test runs under `budget(n)`: n examples, derandomized, so the suite is reproducible and
bounded. `JITSI_PY_FUZZ_EXAMPLES=20000` runs each target that many times instead, with fresh
random inputs on every run (a developer's long local run); a failure prints the `@example`
and `@reproduce_failure` to pin it with.

Derandomized is reproducible for one code base and one test selection, not across them:
Hypothesis mixes constants it finds in the loaded project modules into what it generates, so
running one fuzz module alone explores slightly different inputs than the whole suite does.
Every input that once broke something is therefore kept as an explicit `@example`.
"""
from __future__ import annotations

import contextlib
import os
import signal
from typing import Iterator

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG_RUN = int(os.environ.get("JITSI_PY_FUZZ_EXAMPLES", "0") or 0)
HANG_SECONDS = 5.0  # CPU seconds one example may take before it counts as a hang


def budget(examples: int) -> settings:
    return settings(max_examples=LONG_RUN or examples, derandomize=not LONG_RUN, deadline=None,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


class Hang(Exception):
    """An example ran longer than HANG_SECONDS of CPU time: a loop that does not end on garbage."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang(f"no result after {HANG_SECONDS} s of CPU time")


@contextlib.contextmanager
def watchdog(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Raise Hang inside the code under test if it spins. CPU time (SIGVTALRM), so that neither a
    busy machine nor pytest-timeout's SIGALRM interferes."""
    previous = signal.signal(signal.SIGVTALRM, _alarm)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` in chunks at the given cut points (taken modulo its length): how TCP may deliver it."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a]


# XML 1.0 characters lxml accepts in attribute values and text (no controls, surrogates, U+FFFE/F).
XML_CHARS = st.characters(min_codepoint=0x20, blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff")
xml_text = st.text(XML_CHARS, max_size=24)

# Numbers as they appear in attributes: in range, out of range, not numbers, numbers Python's
# int() reads but a protocol does not (" 7", "1_0", "٣"), and str.isdigit() traps ("²").
HOSTILE_NUMBERS = ["0", "1", "2", "5", "96", "100", "111", "127", "128", "255", "256", "5000", "65535",
                   "65536", "99999", "2147483647", "4294967295", "4294967296", "-1", "-0", "-99999",
                   "", " ", "abc", " 7", "7 ", "1_0", "+5", "0x10", "1e3", "1.5", "nan", "²", "٣", "9" * 60,
                   "9" * 5000]
numbers = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.integers(-2 ** 40, 2 ** 40).map(str))

# JIDs: fine, malformed (RFC 7622), over-long, odd Unicode.
HOSTILE_JIDS = ["", "user@localhost", "user@localhost/res", "room@conference.localhost",
                "room@conference.localhost/nick", "focus@auth.localhost/focus", "localhost", "@", "a@", "@b",
                "a@b@c", "/r", "a/", "localhost/", "a@b/", "x" * 1024 + "@localhost", "u@" + "d" * 1100,
                "u@localhost/" + "r" * 1100, "user@[::1]", "user@[::1", "user@256.1.1.1", "ü@ß.de",
                "a b@c", "\u200b@x", "a@.", "a@-b", "a@b..c", "\U0001f600@localhost", "a\"b@c", "a@b/c@d"]
jids = st.one_of(st.sampled_from(HOSTILE_JIDS), xml_text)


# How hostile one example is: out of 20 values, how many are garbage. Shared by all draws of an
# example, so some examples are entirely well-formed but for one value, and get deep into a parser.
hostility = st.shared(st.sampled_from([0, 1, 1, 3, 8]), key="hostility")
hostile_value = st.one_of(numbers, jids, xml_text)


@st.composite
def attr_value(draw, good: list[str] | tuple[str, ...]) -> str:
    """Mostly a value the parser expects (so it gets further), else anything hostile."""
    if not good or draw(st.integers(0, 19)) < draw(hostility):
        return draw(hostile_value)
    return draw(st.sampled_from(list(good)))


@st.composite
def present(draw) -> bool:
    """Whether an optional-or-not attribute is there at all."""
    return draw(st.integers(0, 19)) >= draw(hostility)
