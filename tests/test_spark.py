"""Differential tests: the Spark engine (reasoner.engines.spark) must give pyDatalog's and
DuckDB's answers, rule firings, rule patient counts and violations, and `recommend
--engine spark` the same bytes as `--engine duckdb`.

One Spark session (`local[2]`, the `spark` fixture of conftest.py) serves every test.
A Spark run has a fixed cost of seconds per rule set (a statement is a Spark plan), so the
CRS example patients run as one cohort (each file's patients renamed apart: the CRS rule
set is patient-local, so that changes no answer), and the four graphs of the recursion
tests as one graph of four disjoint parts. Marked `slow` (`pytest -m slow tests/test_spark.py`,
about 6 minutes on 2 cores): the recursion over the four graphs, the random programs and
the 10,000-patient comparison; the default run keeps the rest (about 6 minutes on the
2-core machine under load from other work).
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from programs import DECLS, MUTUAL_EMPTY, NEGATION_CHAIN, SAME_GENERATION  # noqa: E402  (tests/programs.py)
from test_duckdb import (  # the very programs the DuckDB engine is tested on
    DOSES, GRAPHS, LANGUAGE, RECURSION, WEIGHTS, _random_facts, _random_program, assert_reference, assert_same,
)
from reasoner import evaluate, load_facts, load_rules
from reasoner.analysis.program import RuleSet
from reasoner.domains.crs.report import rule_patient_counts
from reasoner.engines.model import Model
from reasoner.engines.spark import SparkEngine
from reasoner.engines.sql import DuckDBEngine
from reasoner.io.duckdb_inputs import write_fact_csv
from reasoner.io.facts import FactSet
from reasoner.language.errors import EvaluationLimit, ReasonerError
from reasoner.language.syntax import Fact

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
pytestmark = pytest.mark.usefixtures("spark")


def spark_models(rules: RuleSet, facts: list[Fact], settings: dict | None = None) -> tuple[Model, Model]:
    """Spark's whole model (firings kept) and its narrowed model with the patient counts per
    rule counted in Spark SQL, from one run."""
    engine = SparkEngine(rules, settings, firings=True)
    rows: dict[str, dict] = {}
    for n, fact in enumerate(facts):
        rows.setdefault(fact.pred, {}).setdefault(fact.args, n)
    engine.learn(rows)
    with engine.evaluate_tables({p: list(r) for p, r in rows.items()},
                                {p: list(r.values()) for p, r in rows.items()}) as result:
        return result.to_model(), result.to_model(preds=(), firings_of=())


def three(rules: RuleSet, facts_text: str, settings: dict | None = None) -> tuple[Model, Model]:
    """pyDatalog, DuckDB and Spark over the same facts: every predicate, firing, violation
    and rule patient count alike (and the reference evaluator's answers)."""
    facts = load_facts(rules, text=facts_text)
    reference = evaluate(rules, facts, settings=settings)
    duck = DuckDBEngine(rules, settings, firings=True).evaluate(facts.facts)
    spark, counted = spark_models(rules, facts.facts, settings)
    assert_same(reference, spark)
    assert_same(duck, spark)
    assert counted.fired_for == rule_patient_counts(rules, reference)
    assert_reference(rules, facts, settings, spark)
    return reference, spark


# ----------------------------------------------------------------------------- the CRS rule set
def _renamed(rules: RuleSet, paths: list[Path]) -> list[Fact]:
    """The facts of every file, each file's patients renamed apart (`3:p01`)."""
    out = []
    for i, path in enumerate(paths):
        for fact in load_facts(rules, [path]).facts:
            k = rules.key_index(fact.pred)
            assert k is not None, f"{path}: {fact} holds no patient; it cannot join a cohort"
            args = list(fact.args)
            args[k] = f"{i}:{args[k]}"
            out.append(Fact(fact.pred, tuple(args), fact.span))
    return out


def test_every_example_patient_in_one_run() -> None:
    """facts/*.facts and rules/crs/tests/*.facts (those without settings of their own)."""
    rules = load_rules()
    paths = sorted((ROOT / "facts").glob("*.facts")) + sorted(
        p for p in (ROOT / "rules" / "crs" / "tests").glob("*.facts") if "% setting" not in p.read_text())
    assert len(paths) > 30
    facts = _renamed(rules, paths)
    reference = evaluate(rules, FactSet(facts))
    duck = DuckDBEngine(rules, firings=True).evaluate(facts)
    spark, counted = spark_models(rules, facts)
    assert_same(reference, spark)
    assert_same(duck, spark)
    assert counted.fired_for == rule_patient_counts(rules, reference)
    assert sum(len(rows) for rows in spark.facts.values()) > 1000


# ----------------------------------------------------------------------------- the language
@pytest.mark.parametrize("name", sorted(LANGUAGE))
def test_language_feature(name: str) -> None:
    rules_text, facts_text = LANGUAGE[name]
    three(load_rules(text=DECLS + rules_text), facts_text)


def test_settings_and_negation_over_three_strata() -> None:
    rules = load_rules(text=DECLS + LANGUAGE["aggregate_with_condition_and_setting"][0])
    three(rules, WEIGHTS + DOSES, settings={"window": 12})
    three(load_rules(text=NEGATION_CHAIN), "node(n1). node(n2). node(n3).")


# ----------------------------------------------------------------------------- recursion
@pytest.mark.slow  # ~1 min each on 2 cores: the 40-link chain takes 40 Spark rounds
@pytest.mark.parametrize("program", sorted(RECURSION))
def test_reachability_on_every_graph_at_once(program: str) -> None:
    edges = [f"edge({g}_{a}, {g}_{b})." for g in sorted(GRAPHS) for a, b in sorted(GRAPHS[g])]
    reference, _ = three(load_rules(text=RECURSION[program]), "\n".join(edges))
    assert {a.rsplit("_", 1)[0] for a, _ in reference.tuples("reach")} == set(GRAPHS)


def test_mutual_recursion_and_same_generation() -> None:
    _, spark = three(load_rules(text=MUTUAL_EMPTY), "e(a). e(b).")
    assert spark.tuples("p") == spark.tuples("q") == spark.tuples("r") == set()
    _, spark = three(load_rules(text=SAME_GENERATION),
                     "parent(b, a). parent(c, a). parent(d, b). parent(e, c). parent(f, d).")
    assert {t for t in spark.tuples("sg") if t[0] != t[1]} == {("b", "c"), ("c", "b"), ("d", "e"), ("e", "d")}


def test_negation_aggregate_and_arithmetic_over_recursive_predicates() -> None:
    three(load_rules(text=RECURSION["left"] + """
.decl node(a: symbol) input "nodes"
.decl unreachable(a: symbol, b: symbol) output "no path"
.decl fanout(a: symbol, n: number) output "reachable count"
unreachable(X, Y) :- node(X), node(Y), !reach(X, Y).
fanout(X, N) :- node(X), N = count : { reach(X, _) }.
"""), "node(a). node(b). node(c). edge(a, b). edge(b, a).")
    three(load_rules(text="""
.decl edge(a: symbol, b: symbol, w: number) input "weighted edge"
.decl start(a: symbol) input "start"
.decl dist(a: symbol, d: number) output "a path length"
.decl degree(a: symbol, n: number) internal "out-degree"
dist(X, 0) :- start(X).
dist(Y, D) :- dist(X, D0), edge(X, Y, W), D = D0 + W, D < 20.
degree(X, N) :- dist(X, _), N = count : { edge(X, _, _) }.
n(X + 1) :- dist(_, X), X < 3.
""", infer_declarations=True), "start(a). edge(a, b, 1). edge(b, c, 2.5). edge(c, a, 3). edge(c, d, 7).")


def test_an_unbounded_recursion_stops_with_a_clear_error() -> None:
    rules = load_rules(text='.decl seed(n: number) input "s"\n.decl nat(n: number) output "up"\n'
                            "nat(N) :- seed(N).\nnat(M) :- nat(N), M = N + 1.\n")
    with pytest.raises(EvaluationLimit, match="fixpoint in 4 rounds"):
        SparkEngine(rules, max_iterations=4).evaluate(load_facts(rules, text="seed(0).").facts)


@pytest.mark.slow  # 8 Spark runs, ~10 s each
def test_random_programs() -> None:
    """Random programs (tests/test_duckdb.py's generator; another seed than DuckDB's)."""
    rng = random.Random(7)
    compared = 0
    while compared < 8:
        text = _random_program(rng)
        try:
            rules = load_rules(text=text)
        except ReasonerError:
            continue
        facts = _random_facts(rng)
        try:
            three(rules, facts)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nprogram:\n{text}\nfacts: {facts}") from None
        compared += 1


# ----------------------------------------------------------------------------- files and the command line
def test_both_layouts_csv_and_parquet_and_the_query_command(tmp_path: Path, monkeypatch) -> None:
    """The long layout as CSV, the per-predicate layout as Parquet: `query --engine spark`
    prints what pyDatalog prints; in a folder whose name holds a space and Spark's glob
    characters, one file named relative to the working folder."""
    import duckdb
    tmp_path = tmp_path / "cohort [2026] {a,b} *"
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    rules_path = tmp_path / "r.dl"
    rules_path.write_text(DECLS + LANGUAGE["comparisons"][0])
    rules = load_rules(rules_path)
    facts = load_facts(rules, text=LANGUAGE["comparisons"][1]).facts
    write_fact_csv(tmp_path / "long.csv", [f for f in facts if f.pred == "temp"])
    weights = tmp_path / "weight.parquet"
    rows = ", ".join(f"('{f.args[0]}', {float(f.args[1])})" for f in facts if f.pred == "weight")
    duckdb.sql(f"COPY (SELECT * FROM (VALUES {rows}) AS t(p, kg)) TO '{weights}' (FORMAT parquet)")
    runner = CliRunner()
    args = ["query", "r(P, K)", "long.csv", str(weights), "--rules", str(rules_path)]
    expected = runner.invoke(main_group(), args + ["--engine", "duckdb"])
    got = runner.invoke(main_group(), args + ["--engine", "spark"])
    assert expected.exit_code == 0 and got.exit_code == 0, got.output
    assert got.output == expected.output and "fever" in got.output


def main_group():
    from reasoner.cli import main
    return main


def test_bad_files_get_the_messages_of_every_engine(tmp_path: Path) -> None:
    rules = load_rules()
    path = tmp_path / "bad.csv"
    path.write_text("predicate,arg1,arg2,arg3\nweight_kg,p1,70\nweight_kg,p2,abc\nweight_kg,p3,900\n"
                    "oxygen,p1,spaceship,4\nnosuch,p1,2\n")
    with pytest.raises(ReasonerError) as duck:
        DuckDBEngine(rules).evaluate_csv(path)
    with pytest.raises(ReasonerError) as spark:
        SparkEngine(rules).evaluate_files([path])
    assert [str(d) for d in spark.value.diagnostics] == [str(d) for d in duck.value.diagnostics]


def test_spark_checks_what_the_validator_did_not_see(tmp_path: Path) -> None:
    """Files not validated first (as on HDFS or S3): Spark's own check refuses a bad row (E034)."""
    rules = load_rules()
    path = tmp_path / "bad.csv"
    path.write_text("predicate,arg1,arg2\nweight_kg,p1,70\nweight_kg,p2,abc\nnosuch,p1,2\n")
    with pytest.raises(ReasonerError) as err:
        SparkEngine(rules).evaluate_files([path], validate=False)
    assert {d.code for d in err.value.diagnostics} == {"E034"}
    assert "2 rows of the cohort failed" in str(err.value.diagnostics[-1])


def _generated_cohort(tmp_path: Path, patients: int) -> None:
    from bench_duckdb import write_cohort
    cohort = tmp_path / "cohort.csv"
    write_cohort(patients, cohort, seed=11)
    rules = load_rules()
    engine = SparkEngine(rules, firings=True)
    with engine.evaluate_files([cohort]) as result:
        spark = result.to_model()
        counted = result.to_model(preds=(), firings_of=())
    with DuckDBEngine(rules, firings=True).evaluate_csv(cohort) as result:
        duck = result.to_model()
        duck_counts = result.fired_for()
    assert_same(duck, spark)
    assert counted.fired_for == duck_counts
    assert len(spark.facts["patient"]) == patients
    runner = CliRunner()
    outputs = {}
    for name in ("duckdb", "spark"):
        out, counts = tmp_path / f"{name}.csv", tmp_path / f"{name}_counts.csv"
        res = runner.invoke(main_group(), ["recommend", "--engine", name, "--format", "csv", str(cohort), "-o", str(out),
                                           "--rule-counts", str(counts), "--chunk-size", str(patients // 3)])
        assert res.exit_code == 0, res.output
        outputs[name] = (out.read_bytes(), counts.read_bytes())
    assert outputs["spark"] == outputs["duckdb"]


@pytest.mark.slow  # two CRS runs on Spark, 2-4 min on 2 cores: the example patients above keep one in the default run
def test_generated_cohort_model_and_command_bytes(tmp_path: Path) -> None:
    """300 generated patients read from CSV by Spark: every predicate, firing and count as
    DuckDB, and `recommend --format csv --rule-counts` in partitions of 100 the same bytes."""
    _generated_cohort(tmp_path, 300)


@pytest.mark.slow
def test_ten_thousand_generated_patients(tmp_path: Path) -> None:
    _generated_cohort(tmp_path, 10_000)


# ----------------------------------------------------------------------------- no Java, no traceback
def test_no_java_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "SPARK_REMOTE")}
    env["PATH"] = str(Path(sys.executable).parent)  # python and reasoner, no java
    facts = ROOT / "facts" / "p01_grade2_first_dose.facts"
    proc = subprocess.run([sys.executable, "-m", "reasoner", "query", "--engine", "spark", "crs_grade(P, G)",
                           str(facts)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "error[E031]" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_violations_are_compared_too() -> None:
    _, spark = three(load_rules(text=DECLS + LANGUAGE["integrity_constraints"][0]),
                     LANGUAGE["integrity_constraints"][1])
    assert Counter(v.rule_index for v in spark.violations)


def test_the_local_driver_memory_follows_the_memory_the_process_may_use(tmp_path: Path, monkeypatch) -> None:
    """A quarter of the machine's (or a container's) memory, 2 to 8 GB: 2 GB ran out at a
    million patients. No session is started."""
    from reasoner.engines import cohort
    from reasoner.engines.spark_session import default_driver_memory
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(cohort, "CGROUP_LIMITS", (str(limit),))
    for gib, expected in ((3, "2048m"), (24, "6144m"), (20, "5120m"), (16, "4096m")):
        limit.write_text(str(gib << 30))
        if cohort.memory_bytes() == gib << 30:  # the machine has at least that much
            assert default_driver_memory() == expected, gib
    limit.write_text(str(1 << 40))  # above any machine here: the machine's memory decides
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert default_driver_memory() == f"{min(8192, max(2048, physical // (4 << 20)))}m"
