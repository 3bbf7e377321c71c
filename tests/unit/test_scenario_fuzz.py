"""Mutated example scenarios: loading either succeeds or raises ScenarioInvalid, fast.

Byte flips, YAML punctuation, tags, anchors, aliases, control characters,
truncation, duplication and deep nesting applied to the repository's scenarios.
FUZZ_EXAMPLES sets how many files to try (CI runs thousands; the default keeps
the unit suite fast).
"""

from __future__ import annotations

import gc
import os
import re
import signal
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from test_coordinator.scenario.loader import load_scenario
from test_coordinator.scenario.problems import ScenarioInvalid

ROOT = Path(__file__).resolve().parents[2] / "scenarios"
SEEDS = {
    str(path.relative_to(ROOT)): path.read_bytes()
    for path in sorted([*ROOT.glob("*.yaml"), *ROOT.glob("examples/*.yaml")])
}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
BOMB = "".join(
    f"{name}: &{name} [{','.join([f'*{previous}'] * 9 if previous else ['x'] * 9)}]\n"
    for previous, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
).encode()
SHORT_TOKENS = [
    *(bytes([c]) for c in b"[]{}:,-?|>\"'#&*!%@`\n\t "),
    *(b"- ", b": ", b"? ", b"---\n", b"...\n", b"&a ", b"*a", b"&a [*a]", b"<<: *a\n"),
    *(b"!!python/object:os.system ", b"!!python/object/apply:os.system [true]", b"!shout "),
    *(b"!!int ", b"!!float ", b"!!bool ", b"!!binary ", b"!!timestamp ", b"!!set ", b"!!omap "),
    *(b"!<tag:x> ", b"%TAG ! tag:x,2000:\n"),
    *(b"\x00", b"\x01", b"\x1b[31m", b"\x7f", b"\r", b"\xc2\x85", b"\xe2\x80\xa8", b"\xef\xbb\xbf"),
    *(b"\xff", b"\xc3", b"\xed\xa0\x80"),  # not UTF-8
    *(b".nan", b"-.inf", b"1e999", b"18446744073709551617", b"0x" + b"f" * 200, b"1:00:00"),
    *(b"2020-13-45", b"~", b"=", b"${x}", b"${", "\uff11s".encode(), b'"\\x00\\n\\u2028"'),
]
# Named so that a failing example prints short.
TOKENS = {repr(token): token for token in SHORT_TOKENS} | {
    "the alias bomb": BOMB,
    "5000 digits": b"1" * 5000,
}
NESTS = {"[": (b"[", b"]"), "{a: ": (b"{a: ", b"}"), "- ": (b"- ", b"")}
# Every line break YAML knows, as bytes: a problem's line is never past the last one.
BREAKS = (b"\n", b"\r", b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")

Mutation = tuple[Any, ...]
fraction = st.floats(0, 1)
mutations = st.one_of(
    st.tuples(st.just("flip"), fraction, st.integers(0, 255)),
    st.tuples(st.just("insert"), fraction, st.sampled_from(sorted(TOKENS))),
    st.tuples(st.just("bytes"), fraction, st.binary(min_size=1, max_size=20)),
    st.tuples(st.just("truncate"), fraction),
    st.tuples(st.just("delete"), fraction, st.integers(1, 200)),
    st.tuples(st.just("duplicate"), fraction, fraction, st.integers(1, 50)),
    st.tuples(
        st.just("nest"), fraction, st.sampled_from(sorted(NESTS)), st.sampled_from([63, 65, 2000])
    ),
)


def mutate(data: bytes, mutation: Mutation) -> bytes:
    kind, where, *args = mutation
    at = int(where * len(data))
    if kind == "flip":
        return data[:at] + bytes(args) + data[at + 1 :]
    if kind == "insert":
        return data[:at] + TOKENS[args[0]] + data[at:]
    if kind == "bytes":
        return data[:at] + args[0] + data[at:]
    if kind == "truncate":
        return data[:at]
    if kind == "delete":
        return data[:at] + data[at + args[0] :]
    if kind == "duplicate":
        start, end = sorted((at, int(args[0] * len(data))))
        return data[:end] + data[start:end] * args[1] + data[end:]
    opening, closing = NESTS[args[0]]
    return data[:at] + opening * args[1] + closing * args[1] + data[at:]


def _expire(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("loading a scenario used more than 5s of CPU")


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "mutated.yaml"


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,  # timed below, on the load alone
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(seed=st.sampled_from(sorted(SEEDS)), changes=st.lists(mutations, min_size=1, max_size=4))
def test_a_mutated_scenario_loads_or_is_invalid_never_crashes(
    fuzz_file: Path, seed: str, changes: list[Mutation]
) -> None:
    data = SEEDS[seed]
    for change in changes:
        data = mutate(data, change)
    fuzz_file.write_bytes(data)
    # CPU time, not wall time, and no collection of the objects Hypothesis piles up
    # over thousands of examples: a busy CI machine must not fail the test, a blow-up must.
    previous = signal.signal(signal.SIGVTALRM, _expire)
    signal.setitimer(signal.ITIMER_VIRTUAL, 5)
    gc.disable()
    started = time.process_time()
    try:
        with warnings.catch_warnings():
            # re.compile warns about "[[" in a log check's pattern; printed, not a crash.
            warnings.simplefilter("ignore", FutureWarning)
            load_scenario(fuzz_file, environ={})
    except ScenarioInvalid as exc:
        problems = exc.problems
    else:
        problems = ()
    finally:
        elapsed = time.process_time() - started
        gc.enable()
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)

    event("loads" if not problems else "invalid")
    assert elapsed < 1.0
    last_line = 1 + sum(data.count(brk) for brk in BREAKS)
    located = re.compile(rf"{re.escape(str(fuzz_file))}:(\d+):(\d+): \S")
    for problem in problems:
        line = str(problem)
        assert "\n" not in line and "\r" not in line
        match = located.match(line)
        assert match is not None, line
        assert 1 <= int(match.group(1)) <= last_line, line
        assert 1 <= int(match.group(2)), line
