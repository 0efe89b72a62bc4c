"""The `datalog-conformance` suite (PyPI, 0.1.0) through the reasoner's own parser,
checker, compiler and engine (reasoner/conformance.py, docs/conformance.md).

Every core case (a plain Datalog `program`, 114 in 0.1.0) runs; the defeasible and KLM
cases (181, under `_tests/defeasible/`) are not collected: they need a defeasible
evaluator. Known failures are xfail with their reason:
- the 14 `negation/nemo_negation` cases read a NAMED variable that occurs only under
  negation existentially; our language rejects it (E007) and reads `_` existentially,
  which is what `errors/review_v2_unsafe_negation` expects (it passes). strict=True.
- none other: the 2 `recursion/souffle_example_hmmer` cases (points-to analysis, 52k
  facts, about 27 million rule firings) pass too, in about 12 minutes on 2 cores; they
  are marked `slow` (`pytest -m "not slow"` leaves them out of a quick local run) and CI
  runs them (docs/conformance.md has the measurements).

The wheel's own `yaml_test_case` fixture loads the whole corpus with PyYAML's pure-Python
loader (60 s, 630 MB here); this file loads the core files with the C loader (8 s) and
builds the same cases and ids with the package's own schema code. The `runner` fixture
here replaces the plugin's (which needs --datalog-evaluator) with our `Evaluator`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("datalog_conformance")

from datalog_conformance import ConformanceFailure, YamlTestRunner, get_tests_dir  # noqa: E402
from datalog_conformance.plugin import _load_multi_case_file  # noqa: E402  (pinned 0.1.0)
from datalog_conformance.schema import Program  # noqa: E402
from datalog_conformance.schema import TestCase as SuiteCase  # noqa: E402  (a Test* name would be collected)

from reasoner.conformance import (  # noqa: E402
    DEFAULT_TIME_LIMIT, ArityMismatchError, ConformanceError, CyclicNegationError, EvaluationTimeout, Evaluator,
    SafetyViolationError, TranslationError, UnsupportedValueError, evaluate_program, translate,
)

TIME_LIMIT = float(os.environ.get("REASONER_CONFORMANCE_TIME_LIMIT", DEFAULT_TIME_LIMIT))
HEAVY_TIME_LIMIT = 1800.0  # HMMER: ~12 minutes measured; a hang still ends with a clear failure

NEMO_NEGATION = (
    "contradiction in the suite: nemo_negation reads a named variable that occurs only under "
    "negation (`not s3(X, P, P)`) existentially; our language rejects it as unsafe (E007) and "
    "reads only `_` existentially, as errors/review_v2_unsafe_negation expects "
    "(docs/conformance.md)")


def _load(path: Path) -> list[SuiteCase]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    if raw is None:
        return []
    if isinstance(raw, dict) and "tests" in raw:
        return _load_multi_case_file(raw, path)
    return [SuiteCase.from_dict(raw)]


def _core_cases() -> list[tuple[str, SuiteCase]]:
    """(id, case) for every plain Datalog case, ids as the wheel's plugin makes them.
    The defeasible directory (180 theories, 1 KLM case, and strict-only copies of the
    LUBM and HMMER data: 7 s of YAML) is not read."""
    root = get_tests_dir()
    out = []
    for path in sorted(root.rglob("*.yaml")):
        group = path.relative_to(root).with_suffix("").as_posix()
        if group.startswith("defeasible/"):
            continue
        out += [(f"{group}::{case.name}", case) for case in _load(path) if case.program is not None]
    return out


CORE = _core_cases()


def _params() -> list:
    params = []
    for case_id, case in CORE:
        group = case_id.split("::")[0]
        marks = []
        if group == "negation/nemo_negation":
            marks.append(pytest.mark.xfail(strict=True, raises=SafetyViolationError, reason=NEMO_NEGATION))
        elif group == "recursion/souffle_example_hmmer":
            marks.append(pytest.mark.slow)
        params.append(pytest.param(case, id=case_id, marks=marks))
    return params


def test_every_core_case_is_collected() -> None:
    # datalog-conformance 0.1.0: 114 plain programs (basic 26, negation 33, recursion 49, errors 6)
    groups: dict[str, int] = {}
    for case_id, _ in CORE:
        top = case_id.split("/")[0]
        groups[top] = groups.get(top, 0) + 1
    assert groups == {"basic": 26, "negation": 33, "recursion": 49, "errors": 6}


@pytest.fixture(scope="module")
def runner() -> YamlTestRunner:
    """The suite's own runner over our evaluator (no --datalog-evaluator needed)."""
    return YamlTestRunner(Evaluator(time_limit=TIME_LIMIT))


@pytest.fixture(scope="module")
def heavy_runner() -> YamlTestRunner:
    return YamlTestRunner(Evaluator(time_limit=HEAVY_TIME_LIMIT))


@pytest.mark.conformance
@pytest.mark.parametrize("case", _params())
def test_conformance(case: SuiteCase, request: pytest.FixtureRequest) -> None:
    heavy = "souffle_example_hmmer" in request.node.callspec.id
    request.getfixturevalue("heavy_runner" if heavy else "runner").run_test_case(case)


# ----------------------------------------------------------------------------- the adapter itself
def test_translation_reads_the_suites_rule_syntax() -> None:
    text = translate({"Fib": [(0, 0), (1, 1)], "token": [("1",), ('a"b',)]}, [
        "Fib(n, x + y) :- Fib(n - 1, x), Fib(n - 2, y), (n <= 25)",
        "Ok() :- not Ok()",
        "T (x1, x4) :- R(x1, _, x2), R(x2, _, x3), T(x3, x4).",
        'IsPtr(v,"ttt_obj") :- ExtReturn(_,v).',
        "result(1-2-3) :- seed(x).",
    ])
    assert text.splitlines()[1:] == [
        "p_Fib(V_n, V_x + V_y) :- p_Fib(E1, V_x), p_Fib(E2, V_y), V_n <= 25, E1 = V_n - 1, E2 = V_n - 2.",
        "p_Ok() :- !p_Ok().",
        "p_T(V_x1, V_x4) :- p_R(V_x1, _, V_x2), p_R(V_x2, _, V_x3), p_T(V_x3, V_x4).",
        'p_IsPtr(V_v, "ttt_obj") :- p_ExtReturn(_, V_v).',
        "p_result(1 - 2 - 3) :- p_seed(V_x).",
        "p_Fib(0, 0).",
        "p_Fib(1, 1).",
        'p_token("1").',
        'p_token("a\\"b").',
    ]


def test_names_and_values_come_back_as_the_suite_wrote_them() -> None:
    model = evaluate_program({"R": [(1, 2), (2, 3)], "token": [("1",), (1,)]},
                             ["A(a, b, a+b) :- R(a,b).", "Same(x) :- token(x), R(x, _)."])
    assert model["A"] == {(1, 2, 3), (2, 3, 5)}
    assert model["token"] == {("1",), (1,)}  # the string "1" and the number 1 stay apart
    assert model["Same"] == {(1,)}


@pytest.mark.parametrize("facts, rules, cls, code, ours", [
    ({"Fib": [(0, 0, 2), (1, 1)]}, [], ArityMismatchError, "arity_mismatch", "E003"),
    ({"p": [(1,)]}, ["q(x) :- p(x), r(x)", "r(x, y) :- p(x), p(y)"], ArityMismatchError, "arity_mismatch", "E003"),
    ({}, ["Ok() :- not Ok()"], CyclicNegationError, "cyclic_negation", "E008"),
    ({}, ["p(X) :- q(Y)."], SafetyViolationError, "unbound_variable", "E007"),
    ({}, ["p(x) :- q(y), x < y"], SafetyViolationError, "unbound_variable", "E007"),
    ({"person": [("a",)]}, ["ok(X) :- person(X), not banned(X, Y)."], SafetyViolationError,
     "unbound_variable", "E007"),
    ({}, ["Ok(_) :- Ok(_)"], SafetyViolationError, "safety_violations", "E007"),
])
def test_rejections_carry_the_suites_name(facts, rules, cls, code, ours) -> None:
    with pytest.raises(cls) as info:
        evaluate_program(facts, rules)
    assert isinstance(info.value, ConformanceError)
    assert info.value.code == code and info.value.reasoner_code == ours


def test_negation_with_underscore_is_existential() -> None:
    model = evaluate_program({"main": [(1, 2), (3, 4)], "s": [(1, 9)]}, ["r(x, y) :- main(x, y), not s(x, _)."])
    assert model["r"] == {(3, 4)}


def test_unreadable_rule_is_a_translation_error() -> None:
    with pytest.raises(TranslationError):
        evaluate_program({}, ["p(x) :- q(x) & r(x)"])
    with pytest.raises(TranslationError):
        evaluate_program({}, ["p(cat(x, y)) :- q(x), q(y)."])
    with pytest.raises(TranslationError):  # the class survives the child process
        Evaluator(time_limit=60).evaluate(Program(facts={}, rules=["p(x) :- q(x) & r(x)"]))
    with pytest.raises(UnsupportedValueError):
        Evaluator(time_limit=60).evaluate(Program(facts={"flag": [(True,)]}, rules=[]))


def test_errors_cross_the_process_boundary_and_results_are_cached() -> None:
    evaluator = Evaluator(time_limit=60)
    program = Program(facts={"edge": [("a", "b"), ("b", "c")]},
                      rules=["path(x, y) :- edge(x, y).", "path(x, z) :- edge(x, y), path(y, z)."])
    assert evaluator.evaluate(program)["path"] == {("a", "b"), ("b", "c"), ("a", "c")}
    assert evaluator.last_seconds is not None
    evaluator.last_seconds = None
    assert evaluator.evaluate(program)["path"] == {("a", "b"), ("b", "c"), ("a", "c")}
    assert evaluator.last_seconds is None  # served from the cache
    with pytest.raises(SafetyViolationError) as info:
        Evaluator(time_limit=60).evaluate(Program(facts={}, rules=["p(X) :- q(Y)."]))
    assert info.value.code == "unbound_variable" and "not bound" in str(info.value)


def test_a_program_past_the_time_limit_is_stopped_not_hung() -> None:
    # a 1,500-link chain: about 1.1 million paths, far more than one second's work
    chain = [(i, i + 1) for i in range(1500)]
    program = Program(facts={"edge": chain}, rules=["path(x, y) :- edge(x, y).",
                                                    "path(x, z) :- path(x, y), edge(y, z)."])
    with pytest.raises(EvaluationTimeout):
        Evaluator(time_limit=1.0, cache=False).evaluate(program)


def test_a_conformance_failure_is_reported_by_the_runner() -> None:
    case = SuiteCase.from_dict({"name": "wrong", "description": "d", "source": "s",
                               "program": {"facts": {"p": [[1]]}, "rules": ["q(x) :- p(x)."]},
                               "expect": {"q": [[2]]}})
    with pytest.raises(ConformanceFailure):
        YamlTestRunner(Evaluator(isolate=False)).run_test_case(case)
