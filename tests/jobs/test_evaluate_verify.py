"""Answer equivalence through math_verify, and the hard time limit on one comparison."""

from __future__ import annotations

import time

import pytest

from jobs.evaluation import answers_equivalent
from jobs.evaluation.verify import NO_ANSWER, TIMEOUT, WRONG, Verifier

SAME = [
    ("1/2", "0.5"),
    ("0.5", "\\frac{1}{2}"),
    ("\\frac12", "1/2"),
    ("50\\%", "0.5"),  # decided: a percentage equals its fraction (math_verify's convention)
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("-6, -7", "-7, -6"),  # comma lists are sets of solutions
    ("(1, 2]", "\\left(1,2\\right]"),
    ("(-\\infty, 3)", "(-\\infty,3)"),
    ("x = 3", "3"),
    ("4x - 6x^2 + 8x^3", "8 x^{3} - 6 x^{2} + 4 x"),
    ("-94/3", "- \\frac{94}{3}"),
]
DIFFERENT = [
    ("3", "4"),
    ("(1,2]", "[1,2]"),  # open vs closed end
    ("\\{1,2\\}", "\\{1,3\\}"),
    ("0.333", "\\frac{1}{3}"),  # rounded is not equal
    ("\\frac{1}{3}", "\\frac{1}{2}"),
]


@pytest.mark.parametrize(("pred", "gold"), SAME)
def test_equivalent_answers(pred, gold):
    assert answers_equivalent(pred, gold, timeout_s=10)


@pytest.mark.parametrize(("pred", "gold"), DIFFERENT)
def test_different_answers(pred, gold):
    assert not answers_equivalent(pred, gold, timeout_s=10)


def slow_compare(pred: str, gold: str, timeout_s: float) -> bool:
    """A comparison that hangs unless asked to be quick (runs in the worker process)."""
    if pred != "quick":
        time.sleep(120)
    return pred == gold or pred == "quick"


def test_a_slow_comparison_times_out_counts_as_wrong_and_the_next_one_works():
    with Verifier(timeout_s=0.5, compare=slow_compare, preload=()) as verifier:
        assert verifier.check("quick", "1").correct  # worker up (start-up is not timed)
        began = time.monotonic()
        verdict = verifier.check("hangs", "1")
        assert time.monotonic() - began < 5
        assert verdict.status == TIMEOUT and not verdict.correct
        assert verifier.num_timeouts == 1
        assert verifier.check("quick", "1").correct  # a fresh worker took over
        assert verifier.check(None, "1").status == NO_ANSWER
        assert verifier.check("  ", "1").status == NO_ANSWER


def test_a_pathological_answer_cannot_hang_the_real_comparison():
    # 10^(10^10) is a bignum sympy computes in C, where signal-based timeouts cannot reach.
    with Verifier(timeout_s=1.0) as verifier:
        began = time.monotonic()
        verdict = verifier.check("10^{10^{10}}", "1")
        assert verdict.status in (TIMEOUT, WRONG) and not verdict.correct
        assert time.monotonic() - began < 60  # includes the worker's start-up
        assert verifier.check("\\frac{1}{2}", "0.5").correct


def test_comparisons_from_worker_threads_keep_their_time_limits():
    # math_verify's alarms only work in a main thread; the verifier's worker process runs
    # them in its own, so callers in threads (and several at once) get right verdicts.
    from concurrent.futures import ThreadPoolExecutor

    pairs = SAME[:4] + DIFFERENT[:4]
    with Verifier(timeout_s=10) as verifier, ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda p: verifier.check(*p), pairs))
    assert [v.correct for v in verdicts] == [True] * 4 + [False] * 4
    assert {v.status for v in verdicts} == {"correct", "wrong"}


SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "hunter2",
    "AWS_SESSION_TOKEN": "tok",
    "OPENAI_API_KEY": "sk-test",
    "HF_TOKEN": "hf_x",
    "SYNTHLLM_S3_ENDPOINT_URL": "http://minio:9000",
    "MY_DB_PASSWORD": "pw",
}


def no_secrets_here(pred: str, gold: str, timeout_s: float) -> bool:
    """True when this process's environment holds none of ``SECRETS`` but the harmless one."""
    import os

    return not set(SECRETS) & set(os.environ) and os.environ.get("SYNTHLLM_PROBE") == "kept"


def test_the_worker_starts_without_cloud_credentials(monkeypatch):
    from pathlib import Path

    from jobs.evaluation.verify import worker_environment

    for name, value in {**SECRETS, "SYNTHLLM_PROBE": "kept"}.items():
        monkeypatch.setenv(name, value)
    assert not no_secrets_here("x", "x", 1)  # the parent has them
    assert set(worker_environment({**SECRETS, "PATH": "/bin"})) == {"PATH"}
    with Verifier(timeout_s=30, compare=no_secrets_here, preload=()) as verifier:
        assert verifier.check("x", "x").correct  # evaluated inside the worker
        environ = Path(f"/proc/{verifier._proc.pid}/environ")
        if environ.exists():  # Linux: the process's own environment block, as started
            names = {kv.split(b"=", 1)[0].decode() for kv in environ.read_bytes().split(b"\0")}
            assert not set(SECRETS) & names and "SYNTHLLM_PROBE" in names
