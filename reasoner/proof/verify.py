"""An independent proof checker, for proofs as JSON (what `reasoner why --format json` and
`reasoner recommend --explain --format json` write; docs/output.md, docs/verify.md).

It trusts neither the engines nor the explainer nor the proof: it evaluates the rules over
the facts once with the reference evaluator (reference.py, which shares no code with
them) and checks every step of the proof against the syntax tree and that model:
- `input`: the fact is one of the input facts (and was read where its `origin` says);
- `ruleset`: the rule set states the fact;
- `derived`: the named rule exists with the same digest (its text has not changed); the
  node's bindings (with the anonymous variables the premises fill in) make the head
  exactly the node's fact; there is one premise per body literal, in written order: an
  atom's premise is exactly the instantiated atom and is checked in turn, a comparison is
  true under the checker's own arithmetic, a negated atom matches no fact of the
  reference model, an aggregate's value is recomputed from the reference model and its
  listed facts are exactly the facts of its group, each checked in turn;
- `cut` (not expanded past --depth) is *unchecked*: never valid;
- any other kind (a why-not node) where a proof step is expected fails;
- the proved fact itself is in the reference model; a proof of a violation of an
  integrity constraint (`reasoner why CONSTRAINT_ID`: a derived root without a fact) has
  its body checked as above, and the reference model has that violation.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from reasoner.proof import reference
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.syntax import Aggregate, Atom, Comparison, Negation, Rule, Span, Value, Var, format_value

FAILED, UNCHECKED = "failed", "unchecked"
CUT_MESSAGE = "cut at --depth; rerun with a larger --depth"
FACT_KINDS = ("input", "ruleset", "derived", "cut")


@dataclass(frozen=True)
class Problem:
    """One step that does not verify: where (`node`, a path id such as n.1.2, inside the
    proof at `proof`, a JSON pointer into its document), what it claims, and why."""

    node: str
    status: str  # FAILED or UNCHECKED
    claim: str
    why: str
    proof: str = ""

    def __str__(self) -> str:
        where = f"{self.proof} {self.node}" if self.proof else self.node
        status = "unchecked: " if self.status == UNCHECKED else ""
        return f"{where} {self.claim}: {status}{self.why}"


@dataclass
class Outcome:
    """What checking one or more proofs found."""

    proofs: int = 0
    steps: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        s = "" if self.proofs == 1 else "s"
        if self.ok:
            return f"{self.proofs} proof{s}, {self.steps} steps verified"
        failed = {(p.proof, p.node) for p in self.problems if p.status == FAILED}
        unchecked = {(p.proof, p.node) for p in self.problems} - failed
        verified = max(self.steps - len(failed) - len(unchecked), 0)
        return (f"{self.proofs} proof{s}, {self.steps} steps: {verified} verified, "
                f"{len(failed)} failed, {len(unchecked)} unchecked")


# ----------------------------------------------------------------------------- documents
def find_proofs(doc: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every proof object in a JSON document, with its JSON pointer (`/proofs/0`,
    `/patients/0/recommendations/2/proof`): an object with a `kind` and a `text`, and
    whatever stands where a proof belongs (an element of `proofs`, the value of `proof`,
    a value of `because`), so a malformed proof there fails instead of going unseen."""
    def at(key: object) -> str:
        return f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"

    if isinstance(doc, dict):
        if "kind" in doc and "text" in doc:
            yield pointer or "/", doc
            return
        for key, value in doc.items():
            if key == "proof" or (key == "because" and isinstance(value, dict)) or \
                    (key == "proofs" and isinstance(value, list)):
                slots = [(at(key), value)] if key == "proof" else \
                    [(f"{at(key)}/{k}", v) for k, v in (value.items() if isinstance(value, dict) else enumerate(value))]
                for where, item in slots:
                    if isinstance(item, dict) and not ("kind" in item and "text" in item):
                        yield where, item  # in a proof's place, but not a proof: it fails
                    else:
                        yield from find_proofs(item, where)
            else:
                yield from find_proofs(value, at(key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from find_proofs(value, f"{pointer}/{i}")
    elif pointer.endswith("/proof") or "/proofs/" in pointer or "/because/" in pointer:
        yield pointer, doc  # a number or a string where a proof belongs


def read_document(path: str, text: str | None = None) -> Any:
    """A proof document, or ReasonerError E018 located at the JSON error."""
    try:
        if text is None:
            text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ReasonerError.at(Span(path, 0, 0), "not UTF-8 text", "E018") from None
    except OSError as exc:
        raise ReasonerError.at(Span(path, 0, 0), f"cannot read: {exc.strerror or exc}", "E018") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReasonerError.at(Span(path, exc.lineno, exc.colno), f"not valid JSON: {exc.msg}", "E018") from None
    except RecursionError:
        raise ReasonerError.at(Span(path, 1, 1), "not valid JSON: nested too deeply", "E018") from None


# ----------------------------------------------------------------------------- the checker
def _constant(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == v)


def _fact_of(node: dict) -> tuple[str, tuple[Value, ...]] | None:
    pred, args = node.get("predicate"), node.get("args")
    if not isinstance(pred, str) or not isinstance(args, list) or not all(_constant(a) for a in args):
        return None
    return pred, tuple(args)


def _text(pred: str, args: tuple[Value, ...]) -> str:
    return f"{pred}({', '.join(format_value(a) for a in args)})"


def _at(origin: str, span: Span) -> bool:
    """Does `origin` (file:line:col) name the place `span` says a fact was read?"""
    if origin == str(span):
        return True
    file, _, rest = origin.rpartition(":")
    file, _, line = file.rpartition(":")
    if f"{line}:{rest}" != f"{span.line}:{span.col}":
        return False
    try:
        return Path(file).resolve() == Path(span.file).resolve()
    except (OSError, ValueError):
        return False


class Verifier:
    """Checks proofs against one reference model of `ruleset` over `facts`."""

    def __init__(self, ruleset, facts, settings: dict | None = None):
        self.rs = ruleset
        self.ref = reference.evaluate(ruleset, facts, settings)
        self.inputs: dict[tuple[str, tuple[Value, ...]], list[Span]] = {}
        for fact in getattr(facts, "facts", facts):
            self.inputs.setdefault((fact.pred, tuple(fact.args)), []).append(fact.span)
        self.stated = {(r.head.pred, tuple(a.value for a in r.head.args)) for r in ruleset.rules
                       if r.head is not None and not r.body}
        self.rules = {ruleset.rule_name(r): (i, r) for i, r in enumerate(ruleset.rules)}

    def check(self, proof: Any, where: str = "") -> Outcome:
        """Check one proof object (a JSON dict as `to_json_obj` writes it)."""
        run = _Run(self, where)
        root = proof.get("id") if isinstance(proof, dict) and isinstance(proof.get("id"), str) else "n"
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 50_000))  # about three frames per level: long chains are fine
        try:
            run.node(proof, root)
        except RecursionError:
            run.fail(root, "?", "nested too deeply for this checker to walk (Python's recursion limit)")
        finally:
            sys.setrecursionlimit(limit)
        fact = _fact_of(proof) if isinstance(proof, dict) else None
        if fact is not None and proof.get("kind") in FACT_KINDS and not self.ref.holds(*fact):
            run.fail(root, _text(*fact), "the rules and the facts do not entail this fact (it is not in the "
                                         "reference model)")
        if run.violation is not None:  # a proof that an integrity constraint is violated
            index, env = run.violation
            if not any(i == index and all(k not in env or reference.same(env[k], v) for k, v in b.items())
                       for i, b in self.ref.violations):
                run.fail(root, str(proof.get("text", "?")), "the reference model has no such violation of "
                                                            f"{self.rs.rule_name(self.rs.rules[index])}")
        return Outcome(1, run.steps, run.problems)

    def check_document(self, doc: Any) -> Outcome:
        total = Outcome()
        for pointer, proof in find_proofs(doc):
            one = self.check(proof, pointer)
            total.proofs += 1
            total.steps += one.steps
            total.problems += one.problems
        return total


class _Run:
    """One proof's walk: the steps seen and the problems found."""

    def __init__(self, v: Verifier, where: str):
        self.v, self.ref, self.where = v, v.ref, where
        self.steps = 0
        self.problems: list[Problem] = []
        self.violation: tuple[int, dict] | None = None  # (constraint index, bindings) of a violation's root

    def fail(self, nid: str, claim: str, why: str, status: str = FAILED) -> None:
        self.problems.append(Problem(nid, status, claim, why, self.where))

    def node(self, node: Any, nid: str) -> None:
        self.steps += 1
        if not isinstance(node, dict):
            self.fail(nid, "?", "not a proof node (a JSON object)")
            return
        kind = node.get("kind")
        fact = _fact_of(node)
        claim = _text(*fact) if fact is not None else str(node.get("text", "?"))
        children = node.get("children", [])
        if not isinstance(children, list):
            self.fail(nid, claim, "its children are not a list")
            return
        if kind == "cut":
            self.fail(nid, claim, CUT_MESSAGE, UNCHECKED)
        elif kind not in ("input", "ruleset", "derived"):
            self.fail(nid, claim, f"a {kind!r} node where a proof of a fact was expected")
        elif fact is None and kind == "derived" and "predicate" not in node and "args" not in node:
            self.derived(node, nid, claim, None, children)  # a violation of an integrity constraint
        elif fact is None:
            self.fail(nid, claim, "names no fact (a predicate and a list of constants as args)")
        elif kind != "derived" and children:
            self.fail(nid, claim, f"an {kind} fact has no premises, yet {len(children)} are listed")
        elif kind == "input":
            places = self.v.inputs.get(fact)
            origin = node.get("origin")
            if places is None:
                self.fail(nid, claim, "claimed as an input fact, but the input has no such fact")
            elif origin is not None and not any(_at(str(origin), s) for s in places) \
                    and not all(s.file == "<none>" for s in places):
                self.fail(nid, claim, f"the input has this fact at {', '.join(map(str, places))}, not at {origin}")
        elif kind == "ruleset":
            if fact not in self.v.stated:
                self.fail(nid, claim, "claimed as a fact of the rule set, but the rule set states no such fact")
        else:
            self.derived(node, nid, claim, fact, children)

    def derived(self, node: dict, nid: str, claim: str, fact, children: list) -> None:
        """A rule step; with `fact` None, a violation of the integrity constraint named."""
        rule_obj = node.get("rule") if isinstance(node.get("rule"), dict) else {}
        name = rule_obj.get("id")
        if name not in self.v.rules:
            self.fail(nid, claim, f"no rule {name}" if name else "names no rule")
            return
        index, rule = self.v.rules[name]
        if rule_obj.get("digest") != rule.digest:
            self.fail(nid, claim, f"rule {name} changed since the proof was made (digest "
                                  f"{rule_obj.get('digest')}, now {rule.digest})")
            return
        if fact is None and rule.head is not None:
            self.fail(nid, claim, f"names no fact, and rule {name} is not an integrity constraint")
            return
        if fact is not None and (rule.head is None or rule.head.pred != fact[0] or len(rule.head.args) != len(fact[1])):
            self.fail(nid, claim, f"rule {name} does not conclude {fact[0]}/{len(fact[1])}")
            return
        if len(children) != len(rule.body):
            self.fail(nid, claim, f"has {len(children)} premises; rule {name} has {len(rule.body)} body literals")
            return
        bindings = node.get("bindings", {})
        if not isinstance(bindings, dict) or not all(_constant(b) for b in bindings.values()):
            self.fail(nid, claim, "its bindings are not variables with constant values")
            return
        env = self.environment(rule, index, bindings, children)
        for position, (lit, child) in enumerate(zip(rule.body, children)):
            self.premise(index, position, lit, child, env, f"{nid}.{position + 1}", name)
        if fact is None:
            self.violation = (index, env)
            return
        try:
            head = tuple(self.ref.calc(a, env) for a in rule.head.args)
        except KeyError as exc:
            self.fail(nid, claim, f"variable {exc.args[0]} of the head has no value")
            return
        except reference.NoValue as exc:
            self.fail(nid, claim, f"the head of rule {name} has no value ({exc})")
            return
        if head != fact[1]:
            self.fail(nid, claim, f"rule {name} under these bindings concludes {_text(fact[0], head)}, not this fact")

    def environment(self, rule: Rule, index: int, bindings: dict, children: list) -> dict[str, Value]:
        """The node's bindings, plus what the premises show (the anonymous variables the
        proof leaves out), plus assignments and aggregate results the proof left out."""
        # only variables the body binds: never one that occurs only under a negation (it reads
        # "anything": a value given for it would make the negation vacuous) or only inside an aggregate
        names: set[str] = set()
        for lit in rule.body:
            if isinstance(lit, (Atom, Comparison)):
                names |= set(reference.variables(lit))
            elif isinstance(lit, Aggregate):
                names.add(lit.result.name)
        env = {k: v for k, v in bindings.items() if k in names}
        for lit, child in zip(rule.body, children):
            shown = _fact_of(child) if isinstance(child, dict) else None
            if isinstance(lit, Atom) and shown is not None and len(shown[1]) == len(lit.args):
                for arg, value in zip(lit.args, shown[1]):
                    if isinstance(arg, Var) and arg.name not in env:
                        env[arg.name] = value
        for _ in rule.body:  # each pass can bind one more variable
            for position, lit in enumerate(rule.body):
                try:
                    if isinstance(lit, Comparison) and lit.op == "=":
                        for var, other in ((lit.left, lit.right), (lit.right, lit.left)):
                            if isinstance(var, Var) and var.name not in env:
                                env[var.name] = self.ref.calc(other, env)
                    elif isinstance(lit, Aggregate) and lit.result.name not in env:
                        value = self.ref.group(index, position, env).value
                        if value is not None:
                            env[lit.result.name] = value
                except (KeyError, reference.NoValue):
                    pass
        return env

    def premise(self, index: int, position: int, lit, child: Any, env: dict, nid: str, name: str) -> None:
        claim = str(child.get("text", "?")) if isinstance(child, dict) else "?"
        try:
            if isinstance(lit, Atom):
                expected = (lit.pred, tuple(self.ref.calc(a, env) for a in lit.args))
                shown = _fact_of(child) if isinstance(child, dict) else None
                if shown == expected:
                    self.node(child, nid)
                    return
                self.steps += 1
                self.fail(nid, claim if shown is None else _text(*shown),
                          f"premise is not {_text(*expected)}, the body literal {lit} under the bindings")
                return
            self.steps += 1
            kind = {Negation: "absent", Comparison: "comparison", Aggregate: "aggregate"}[type(lit)]
            if not isinstance(child, dict) or child.get("kind") != kind:
                shown_kind = child.get("kind") if isinstance(child, dict) else type(child).__name__
                self.fail(nid, claim, f"premise for {lit} is a {shown_kind!r} node, not {kind!r}")
            elif isinstance(lit, Negation):
                found = self.ref.matching(lit.atom, env)
                if found:
                    self.fail(nid, claim, f"{lit} is claimed absent, but {_text(lit.atom.pred, found[0])} holds")
            elif isinstance(lit, Comparison):
                left, right = self.ref.calc(lit.left, env), self.ref.calc(lit.right, env)
                if not self.ref.compare(lit.op, left, right):
                    self.fail(nid, claim, f"comparison {lit} is false for the bindings "
                                          f"({format_value(left)} {lit.op} {format_value(right)})")
            else:
                self.aggregate(index, position, lit, child, env, nid, claim)
        except KeyError as exc:
            self.steps += isinstance(lit, Atom)
            self.fail(nid, claim, f"variable {exc.args[0]} of {lit} has no value in the bindings")
        except reference.NoValue as exc:
            self.steps += isinstance(lit, Atom)
            self.fail(nid, claim, f"{lit} has no value for the bindings ({exc})")

    def aggregate(self, index: int, position: int, lit: Aggregate, node: dict, env: dict, nid: str,
                  claim: str) -> None:
        group = self.ref.group(index, position, env)
        claimed = env[lit.result.name]
        if group.value is None:
            self.fail(nid, claim, f"{lit.func} of this group has no value (no rows), the proof says "
                                  f"{format_value(claimed)}")
        elif not reference.same(group.value, claimed):
            self.fail(nid, claim, f"recounted {lit.func} is {format_value(group.value)}, the proof says "
                                  f"{format_value(claimed)}")
        evidence = node.get("children", [])
        if not isinstance(evidence, list):
            self.fail(nid, claim, "its children are not a list")
            return
        seen: set = set()
        for j, child in enumerate(evidence, 1):
            cid = f"{nid}.{j}"
            fact = _fact_of(child) if isinstance(child, dict) else None
            if fact is None:
                self.steps += 1
                self.fail(cid, str(child.get("text", "?")) if isinstance(child, dict) else "?",
                          "counted evidence that names no fact")
            elif fact in seen:
                self.steps += 1
                self.fail(cid, _text(*fact), "counted twice")
            elif fact not in group.facts:
                self.steps += 1
                self.fail(cid, _text(*fact), f"counted, but not a fact of this group of {lit}"
                                             f"{_keys_text(self.ref, index, lit, env)}")
            else:
                seen.add(fact)
                self.node(child, cid)
        missing = sorted((_text(*f) for f in group.facts - seen))
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            self.fail(nid, claim, f"the evidence leaves out {', '.join(missing[:3])}{more} of the group"
                                  f"{_keys_text(self.ref, index, lit, env)}")


def _keys_text(ref, index: int, lit: Aggregate, env: dict) -> str:
    keys = reference.group_keys(ref.ruleset.rules[index], lit)
    return f" for {', '.join(f'{k} = {format_value(env[k])}' for k in keys)}" if keys else ""


# ----------------------------------------------------------------------------- the old interface
_CACHE: list = []  # (key, ruleset, facts, verifier): the last one, so many proofs share one model


def verifier_for(ruleset, facts, settings: dict | None = None) -> Verifier:
    """A Verifier, reused while the rule set, facts and settings are the same objects."""
    key = (id(ruleset), id(facts), len(getattr(facts, "facts", facts)), tuple(sorted((settings or {}).items())))
    if _CACHE and _CACHE[0][0] == key:
        return _CACHE[0][3]
    verifier = Verifier(ruleset, facts, settings)
    _CACHE[:] = [(key, ruleset, facts, verifier)]
    return verifier


def check_proof(proof, ruleset, facts, model=None, settings: dict | None = None) -> list[str]:
    """Every problem found in `proof` (an explain.Node or its JSON dict), as text; empty
    when every step verifies. `model` is not trusted: only its settings are read, when
    `settings` is not given."""
    if not isinstance(proof, dict):
        from reasoner.proof.explain import to_json_obj
        proof = to_json_obj(proof, ruleset)
    if settings is None and model is not None:
        settings = dict(getattr(model, "settings", {}) or {})
    return [str(p) for p in verifier_for(ruleset, facts, settings).check(proof).problems]


def no_proofs(path: str) -> ReasonerError:
    return ReasonerError([Diagnostic(Span(path, 0, 0), "no proof in this document (a proof is an object with "
                                     "\"kind\" and \"text\", as `reasoner why --format json` writes)", "E019")])


def run_verify(path: str, doc: Any, ruleset, facts, settings: dict | None = None) -> tuple[list[str], bool]:
    """What `reasoner verify` prints (each problem, then a summary line) and whether every
    step verified. Raises ReasonerError for a document with no proof (E019), an unknown
    setting (E012) or a recursion without a fixpoint (E016)."""
    from reasoner.analysis.program import resolve_settings
    found = list(find_proofs(doc))
    if not found:
        raise no_proofs(path)
    resolve_settings(ruleset, settings)  # an unknown name: E012, with the known ones
    try:
        verifier = Verifier(ruleset, facts, settings)
    except reference.RoundLimit as exc:
        raise ReasonerError.at(Span(ruleset.path, 0, 0), f"the reference evaluator stopped: {exc}", "E016") from None
    outcome = verifier.check_document(doc)
    lines = [f"{path}#{p}" for p in outcome.problems]
    made_with = doc.get("settings") if isinstance(doc, dict) else None
    if not outcome.ok and isinstance(made_with, dict) and made_with != verifier.ref.settings:
        lines.append(f"note: the document was made with settings {json.dumps(made_with, sort_keys=True)}; "
                     f"checked with {json.dumps(verifier.ref.settings, sort_keys=True)} (use --set)")
    lines.append(outcome.summary())
    return lines, outcome.ok
