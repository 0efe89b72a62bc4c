"""Malformed rule files and fact files: each is rejected with its message and place."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasoner import load_facts, load_rules
from reasoner.language.errors import ReasonerError
from reasoner.language.parse import parse_facts, parse_program

DECLS = """\
.type device = room_air | nasal_cannula | facemask
.decl temp(p: id, c: number[30, 45] "C") input "temperature"
.decl oxygen(p: id, d: device, l: number[0, 80] "L/min") input "oxygen"
.decl weight(p: id, kg: number[1, 400] "kg") input "weight"
.decl flag(p: id) input "a flag"
.decl out(p: id, x: number) output "an output"
.source astct "Lee 2019"
"""
DECL_LINES = DECLS.count("\n")

# (rule text appended after DECLS, code, line within the appended text, text in message)
BAD_RULES = [
    ("out(P, X) :- temp(P, X)", "E001", 1, "end of file"),                      # missing final '.'
    ("out(P, X) :- temp(P, X),.", "E001", 1, "unexpected '.'"),
    ("out(P X) :- temp(P, X).", "E001", 1, "unexpected 'X'"),
    ("out(P, X) :- temp(P, X) & flag(P).", "E001", 1, "unexpected character '&'"),
    ("out(P, X) :- tmp(P, X).", "E002", 1, "did you mean temp"),
    ("outt(P, 1) :- flag(P).", "E002", 1, "undeclared predicate outt/2"),
    ("out(P) :- flag(P).", "E003", 1, "out takes 2 arguments"),
    ("out(P, X) :- temp(P, X, 1).", "E003", 1, "temp takes 2 arguments"),
    ("out(P, 1) :- oxygen(P, nasal, _).", "E006", 1, "'nasal' is not a value of type device"),
    ("out(P, 1) :- temp(P, hot).", "E004", 1, "expected a number"),
    ("out(P, X) :- oxygen(P, X, _).", "E004", 1, "variable X is used as device here but as number"),
    ("out(P, 1) :- temp(P, T), T > cold.", "E004", 1, "cold is not a number"),
    ("out(P, X) :- flag(P).", "E007", 1, "variable X is not bound"),
    ("out(P, 1) :- flag(P), !temp(Q, _).", "E007", 1, "variable Q in the negation"),
    ("out(P, 1) :- flag(P), T > 38.", "E007", 1, "variable T in the comparison"),
    ("out(P, _) :- flag(P).", "E007", 1, "_ in a head"),
    ("@strength urgent\nout(P, 1) :- flag(P).", "E001", 1, "@strength is one of strong, standard, consider, option"),
    ("@strength option\n@strength strong\nout(P, 1) :- flag(P).", "E001", 2, "a rule has one @strength"),
    ("@choice a\n@choice b\nout(P, 1) :- flag(P).", "E001", 2, "a rule has one @choice"),
    ("out(P, N) :- N = count : { flag(P) }.", "E007", 1, "aggregate's key variable P"),
    ("@source nope\nout(P, 1) :- flag(P).", "E011", 1, "unknown source nope"),
    ("@source astc\nout(P, 1) :- flag(P).", "E011", 1, "did you mean astct"),
    # at its own @source line, not the rule's first annotation
    ("@id r\n@says \"x\"\n@source astct, nope\nout(P, 1) :- flag(P).", "E011", 3, "unknown source nope"),
    ("out(P, X) :- temp(P, T), X = T * $factor.", "E012", 1, "unknown setting $factor"),
    ("@id a.b\nout(P, 1) :- flag(P).\n@id a.b\nout(P, 2) :- flag(P).", "E010", 3, "rule id a.b is already used"),
    (".decl temp(p: id) input \"again\"", "E010", 1, "predicate temp is already declared"),
    (".decl x(p: id, d: dev) input \"x\"", "E004", 1, "unknown type dev (did you mean device?)"),
    (".decl x(p: id, d: symbol[0, 1]) input \"x\"", "E004", 1, "a range needs type number"),
    (".decl x(p: id, d: number[5, 1]) input \"x\"", "E001", 1, "empty range"),
    (".include \"missing.dl\"", "E013", 1, "included file not found"),
    (".include \"/dev/zero\"", "E013", 1, "included file is not a regular file (a device?): /dev/zero"),
    (".include \"/\"", "E013", 1, "included file is a folder, not a rule file: /"),
    ("out(P, X) :- flag(P), X = count : { }.", "E001", 1, "unexpected '}'"),
    ("out(P, S) :- flag(P), S = sum : { temp(P, _) }.", "E001", 1, "sum needs a variable"),
    ("out(P, S) :- flag(P), S = count T : { temp(P, T) }.", "E001", 1, "count takes no variable"),
    ("out(P, X) :- temp(P, X), out(P, X + 1).", "E001", 1, "arithmetic in a body atom"),
    ("@id a\n@id b\nout(P, 1) :- flag(P).", "E001", 2, "one @id"),
    ("out(P, 1) :- flag(P). % fine\n.type t = a | b\n.decl y(v: t) input \"\"\ny(c).", "E006", 4, "'c' is not a value of type t"),
    ("out(P, 5) :- flag(P), abs(1, 2) > 0.", "E001", 1, "abs takes one argument"),
    ("out(P, 1) :- flag(P), P = 3.", "E004", 1, "sets a id against a number"),
    # a constant in a rule gets the code a fact with it gets (E004 was said for all three)
    ("out(P, 1) :- temp(P, 389).", "E005", 1, "389 C is outside the valid range 30–45 C"),
    ("out(P, 1) :- temp(P, hot).", "E004", 1, "expected a number"),
    # a '.' left out at a line's end: placed where the '.' goes, not at the next statement
    ("out(P, X) :- temp(P, X)\n@id next\nout(P, 1) :- flag(P).", "E001", 1,
     "missing '.' at the end of this statement? (the next line, 9, goes on with '@id next')"),
    ("out(P, N) :- flag(P), N = count : { temp(P, C), M = count : { temp(P, C) } }.", "E001", 1,
     "an aggregate inside an aggregate"),
    # 20,000 terms made every later stage overflow Python's stack (an internal error)
    ("out(P, X) :- temp(P, C), X = " + " + ".join(["C"] * 20_000) + ".", "E001", 1, "nested more than 200"),
    # lark's anonymous terminals read as their text, never as __anon_N
    ("out(P, 1) :- flag(P) :- flag(P).", "E001", 1, "unexpected ':-'; expected ',', '.'"),
]


def test_an_expression_200_operations_deep_is_read() -> None:
    rules = load_rules(text=DECLS + "out(P, X) :- temp(P, C), X = " + " + ".join(["C"] * 201) + ".", path="ok.dl")
    assert len(rules.rules) == 1


@pytest.mark.parametrize("text,code,line,needle", BAD_RULES, ids=[f"rule{i}" for i in range(len(BAD_RULES))])
def test_bad_rule_files(text: str, code: str, line: int, needle: str | None) -> None:
    with pytest.raises(ReasonerError) as err:
        load_rules(text=DECLS + text, path="bad.dl")
    first = err.value.diagnostics[0]
    assert first.code == code, str(err.value)
    assert first.span.file == "bad.dl"
    assert first.span.line == DECL_LINES + line, str(err.value)
    assert first.span.col >= 1
    if needle:
        assert needle in first.message, str(err.value)


# (fact text, code, line, text in message)
BAD_FACTS = [
    ("temp(p1, 389).", "E005", 1, "389 C is outside the valid range 30–45 C"),
    ("weight(p1, -5).", "E005", 1, "outside the valid range"),
    ("weight(p1, 0).", "E005", 1, "outside the valid range 1–400"),
    ("oxygen(p1, nasal, 4).", "E006", 1, "'nasal' is not a value of type device"),
    ("oxygen(p1, nasal_canula, 4).", "E006", 1, "did you mean nasal_cannula"),
    ("tmp(p1, 38).", "E002", 1, "did you mean temp"),
    ("temp(p1).", "E003", 1, "temp takes 2 arguments"),
    ("temp(p1, hot).", "E004", 1, "expected a number"),
    ("out(p1, 3).", "E014", 1, "derived by the rules"),
    ("temp(p1, 38)", "E001", 1, "end of file"),
    ("temp(P, 38).", "E001", 1, "unexpected 'P'"),
    ("temp(p1, 38) :- flag(p1).", "E001", 1, "unexpected ':'"),
    ("\n\ntemp(p1, 3 8).", "E001", 3, "unexpected '8'"),
    ("temp(p1, __import__('os').system('touch /tmp/pwned')).", "E001", 1, None),
    ("flag(p1).\n  weight(p1, 1e3).", "E001", 2, None),
    ("flag(p1)\nflag(p2).", "E001", 1, "missing '.' at the end of this statement?"),
]


@pytest.mark.parametrize("text,code,line,needle", BAD_FACTS, ids=[f"facts{i}" for i in range(len(BAD_FACTS))])
def test_bad_fact_files(text: str, code: str, line: int, needle: str | None) -> None:
    rules = load_rules(text=DECLS)
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, text=text, name="p.facts")
    first = err.value.diagnostics[0]
    assert (first.code, first.span.file, first.span.line) == (code, "p.facts", line), str(err.value)
    if needle:
        assert needle in first.message, str(err.value)


def test_every_fact_error_is_reported_at_once() -> None:
    rules = load_rules(text=DECLS)
    text = "temp(p1, 389).\nweight(p1, 70).\noxygen(p1, nasal, 4).\nwieght(p2, 70).\n"
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, text=text, name="p.facts")
    assert [(d.span.line, d.code) for d in err.value.diagnostics] == [(1, "E005"), (3, "E006"), (4, "E002")]


def test_json_and_csv_errors_are_located(tmp_path) -> None:
    rules = load_rules(text=DECLS)
    bad_json = tmp_path / "a.json"
    bad_json.write_text('[\n  {"predicate": "temp", "args": ["p1", 389]},\n  {"predicate": "temp"}\n]')
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, [bad_json])
    assert [(d.span.line, d.span.col, d.code) for d in err.value.diagnostics] == [(2, 3, "E005"), (3, 3, "E015")]
    truncated = tmp_path / "b.json"
    truncated.write_text('[{"predicate": "temp", "args": ["p1", 38]')
    with pytest.raises(ReasonerError, match="b.json:1:"):
        load_facts(rules, [truncated])
    bad_csv = tmp_path / "c.csv"
    bad_csv.write_text("predicate,arg1,arg2\ntemp,p1,38\ntemp,p2,warm\nweight,p3,-1\n")
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, [bad_csv])
    assert [(d.span.line, d.code) for d in err.value.diagnostics] == [(3, "E004"), (4, "E005")]

def test_a_key_given_twice_in_a_json_fact_is_refused_where_it_is_repeated(tmp_path) -> None:
    # Python's json keeps the last of two equal keys without a word: weight 95, not 65
    rules = load_rules(text=DECLS)
    path = tmp_path / "twice.json"
    path.write_text('[\n  {"predicate": "weight", "args": ["p1", 65],\n   "args": ["p1", 95]}\n]')
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, [path])
    (d,) = err.value.diagnostics
    assert (d.span.line, d.span.col, d.code) == (3, 4, "E015")
    assert d.message.startswith('the key "args" appears twice in one object')


def test_json_nan_and_infinity_are_refused_not_read_as_numbers(tmp_path) -> None:
    # Python's json module reads the non-standard NaN and Infinity literals; an untyped
    # (inferred) program has no range to catch them, so the reader itself must.
    rules = load_rules(text="p(X, Y) :- q(X, Y).", infer_declarations=True)
    path = tmp_path / "n.json"
    path.write_text('[{"predicate": "q", "args": ["a", NaN]},\n {"predicate": "q", "args": ["b", -Infinity]}]')
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, [path])
    assert [(d.span.line, d.code) for d in err.value.diagnostics] == [(1, "E015"), (2, "E015")]
    assert "finite" in err.value.diagnostics[0].message


def test_a_fact_file_holding_python_runs_nothing(tmp_path) -> None:
    marker = tmp_path / "pwned"
    payload = f"temp(p1, 38).\n__import__('os').system('touch {marker}').\n"
    rules = load_rules(text=DECLS)
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, text=payload, name="evil.facts")
    assert err.value.diagnostics[0].span.line == 2
    quoted = f'temp("__import__(\'os\').system(\'touch {marker}\')", 38).'
    facts = load_facts(rules, text=quoted)  # as a quoted string it is only a (strange) patient id
    assert facts.facts[0].args[0].startswith("__import__")
    assert not marker.exists()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_arbitrary_text_raises_only_our_error(text: str) -> None:
    for parse in (parse_program, parse_facts):
        try:
            parse(text, "fuzz")
        except ReasonerError:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["p(", ")", "X", "a", ",", ".", ":-", "!", "=", "count", ":", "{", "}", "1",
                                 "\"s\"", "%", "\n", ".decl", "@id", "x", "-", "+", "<", "$s", " "]), max_size=30))
def test_token_soup_raises_only_our_error(tokens: list[str]) -> None:
    text = "".join(tokens)
    for parse in (parse_program, parse_facts):
        try:
            parse(text, "fuzz")
        except ReasonerError:
            pass
    try:
        load_rules(text=DECLS + text)
    except ReasonerError:
        pass


def test_an_aggregate_grouped_by_another_aggregates_answer_is_refused(tmp_path) -> None:
    from click.testing import CliRunner

    from reasoner.cli import main
    rules = tmp_path / "r.dl"
    rules.write_text('.decl given(p: id, mg: number) input "a dose"\n'
                     '.decl many(p: id, n: number, m: number) output "doses above the count"\n'
                     'many(P, N, M) :- given(P, _), N = count : { given(P, _) },\n'
                     '                 M = count : { given(P, N) }.\n', encoding="utf-8")
    facts = tmp_path / "f.facts"
    facts.write_text("given(p1, 5). given(p1, 1).\n", encoding="utf-8")
    for engine in ("pydatalog", "duckdb"):
        result = CliRunner().invoke(main, ["query", "many(P, N, M)", str(facts), "--rules", str(rules),
                                           "--engine", engine])
        assert result.exit_code == 2, result.output
        assert f"{rules}:4:18: error[E007]: an aggregate's keys may not depend on another aggregate" in result.output


def test_messages_say_what_was_given() -> None:
    # an empty goal read as "unexpected '.'"; --set x=__import__(...) as a digit separator
    from click.testing import CliRunner

    from reasoner.cli import main
    p01 = "facts/p01_grade2_first_dose.facts"
    result = CliRunner().invoke(main, ["query", "   ", p01])
    assert result.exit_code == 2 and "error[E016]: an empty goal" in result.output
    result = CliRunner().invoke(main, ["query", "--set", "toci_max_mg=__import__('os')", "crs_grade(P, G)", p01])
    assert result.exit_code == 2 and "digit separators" not in result.output and "not a number" in result.output
    result = CliRunner().invoke(main, ["query", "--set", "toci_max_mg=8_00", "crs_grade(P, G)", p01])
    assert result.exit_code == 2 and "digit separators" in result.output


def test_a_rule_file_that_is_not_utf8_is_located(tmp_path) -> None:
    path = tmp_path / "latin1.dl"
    path.write_bytes(DECLS.encode() + "% fièvre\n".encode("latin-1"))
    with pytest.raises(ReasonerError) as err:
        load_rules(path)
    (d,) = err.value.diagnostics
    assert (d.span.line, d.span.col, d.code) == (DECL_LINES + 1, 5, "E013") and "not UTF-8 text" in d.message


def test_span_at_places_every_offset_as_counting_lines_would() -> None:
    # span_at counted the newlines before each offset (quadratic over a 20,000-entry
    # Bundle); it now searches offsets found once per text: the same places
    from reasoner.io.fact_readers import span_at
    for text in ("", "a", "ab\ncd\n\nef", "\n\n", "x\r\ny\n"):
        other = "zz\n" * 3  # another text in between must not mix up the two
        for pos in range(len(text) + 1):
            span_at(other, "o", 1)
            line = text.count("\n", 0, pos) + 1
            col = pos - (text.rfind("\n", 0, pos) + 1) + 1
            assert (span_at(text, "t", pos).line, span_at(text, "t", pos).col) == (line, col), (text, pos)
