"""The checker's findings model: every code with its severity and explanation (CODES, the
catalogue docs/checks.md lists), a Finding, and a CheckReport (the findings of one run
with what the solver and the search did).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from reasoner.language.errors import Diagnostic
from reasoner.language.syntax import NO_SPAN, Fact, Span, Value

# code → (severity, one-line explanation), in the style of ruff's rule catalogue
CODES: dict[str, tuple[str, str]] = {
    "E001": ("error", "syntax error: the text does not follow the grammar"),
    "E002": ("error", "undeclared predicate (or a misspelling of a declared one)"),
    "E003": ("error", "arity mismatch: a predicate used with the wrong number of arguments"),
    "E004": ("error", "type mismatch: a value or variable of the wrong type for its argument"),
    "E005": ("error", "a value outside its declared range"),
    "E006": ("error", "a value that is not one of its enumeration's values"),
    "E007": ("error", "unsafe variable: not bound by a positive literal"),
    "E008": ("error", "negation through recursion: no stratified model exists"),
    "E009": ("error", "aggregation through recursion"),
    "E010": ("error", "duplicate declaration or rule id"),
    "E011": ("error", "unknown source key in @source"),
    "E012": ("error", "unknown setting"),
    "E013": ("error", "a rule file or include that cannot be read"),
    "E014": ("error", "a fact for a derived predicate in a fact file"),
    "E015": ("error", "a fact file in the wrong form (JSON, CSV)"),
    "E016": ("error", "a goal or command input that does not fit"),
    "E017": ("error", "a second, different fact for a predicate declared `one` per patient"),
    "E018": ("error", "a proof document (reasoner verify) that cannot be read or is not valid JSON"),
    "E019": ("error", "a proof document (reasoner verify) with no proof in it"),
    "E020": ("error", "command-line usage: an unknown option, a missing argument, a value outside an option's range"),
    "E021": ("error", "an output file or folder that cannot be written (a missing folder, no permission, a full disk)"),
    "E022": ("error", "evaluation stopped at a limit: --time-limit, a recursion's round limit, DuckDB's memory"),
    "E023": ("error", "internal error: an unexpected failure inside the reasoner (please report it)"),
    "E024": ("error", "a setting's value outside its declared range, or not a plain number (--set, .setting)"),
    "E030": ("error", "--engine spark without pyspark installed"),
    "E031": ("error", "--engine spark without Java (17 or later) on this machine"),
    "E032": ("error", "--engine spark: the Spark session did not start (master URL, cluster, SPARK_REMOTE)"),
    "E033": ("error", "--engine spark: a statement Spark could not run (its first line of error)"),
    "E034": ("error", "--engine spark: a row Spark read does not fit the declarations (Spark's own check)"),
    "E040": ("error", "a FHIR input that is not JSON, not a Bundle, or fails FHIR R4B validation"),
    "E041": ("error", "a FHIR resource that cannot be mapped to a fact: unit, value, code, status or time"),
    "E042": ("note", "a FHIR resource that gives no fact on purpose (entered in error, superseded, unread type)"),
    "E043": ("error", "FHIR input without the assessment time or patient a fact needs"),
    "E044": ("error", "a rule set's FHIR mapping file (fhir-map.toml) missing or wrong"),
    "E045": ("error", "a fact that cannot be written as FHIR (reasoner facts to-fhir)"),
    "E050": ("error", "reasoner serve: a request that is not a CDS Hooks request (not JSON, a field missing)"),
    "E051": ("error", "reasoner serve: an unknown CDS service id (404), or a hook the service is not for"),
    "E052": ("error", "reasoner serve: a request body over --max-body-bytes (413)"),
    "E053": ("error", "reasoner serve: FHIR data that cannot be read as facts (code, unit, value, patient)"),
    "E054": ("error", "reasoner serve: data neither prefetched nor obtainable from fhirServer (412)"),
    "E055": ("error", "reasoner serve: a feedback request that cannot be recorded (unknown card, bad outcome)"),
    "E056": ("error", "reasoner serve/overrides: a feedback database that cannot be opened or is not one"),
    "W101": ("warning", "singleton variable: named once; write _ if it is meant to be ignored"),
    "W102": ("warning", "rule without @id"),
    "W103": ("warning", "rule without @source"),
    "W104": ("warning", "rule without @says"),
    "W105": ("warning", "declared predicate that no rule uses"),
    "W106": ("warning", "derived predicate that no output, constraint or requirement uses"),
    "W107": ("warning", "rule that is not patient-local: it joins facts of different patients"),
    "W108": ("warning", "source declared but cited by no rule"),
    "W109": ("warning", "setting declared but read by no rule (setting it changes nothing)"),
    "S201": ("error", "integrity constraint violated: a witness patient breaks it"),
    "S202": ("warning", "conflict the rule set can produce (indicated or ordered, and contraindicated)"),
    "S203": ("error", "coverage requirement (.require) fails for a witness patient"),
    "S204": ("error", "rules whose conditions overlap while their conclusions contradict"),
    "S205": ("warning", "dead rule: no patient fires it (proved), or no explored patient did (searched)"),
    "S206": ("warning", "redundant rule: everything it concludes another rule with the same head concludes too"),
    "S207": ("error", "a derived value outside its declared range, integer type or enumeration (a dose over its cap)"),
}



@dataclass
class Finding:
    code: str
    span: Span
    message: str
    target: str = ""  # a rule id or predicate name, for .allow
    witness: list[Fact] | None = None
    witness_file: str | None = None
    allowed: str | None = None
    status: str | None = None
    """Semantic findings: "proved" (the solver; a witness the engine reproduced, or a proof of
    absence) or "searched" (explore.py; `note` says what the solver did not cover)."""
    note: str = ""
    item: tuple | None = None  # what the finding is about (check.Item), for matching solver and search
    patient: str | None = None  # the witness's patient id, renamed `w` in witness files

    @property
    def severity(self) -> str:
        return CODES[self.code][0]


@dataclass
class CheckReport:
    rules_path: str
    findings: list[Finding] = field(default_factory=list)
    explored: dict = field(default_factory=dict)
    overrides: dict[str, Value] = field(default_factory=dict)
    not_run: str = ""
    """Why the semantic checks did not run although asked for (a rule file that did not parse)."""
    """`--set` values the check ran with (repeated in each witness file's run line)."""

    @property
    def internal(self) -> list[str]:
        """Internal errors of the checker itself (a solver witness the engine did not
        reproduce, a search that contradicts a proof): never findings, always errors."""
        return list(self.explored.get("internal", []))

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error" and not f.allowed) + len(self.internal)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning" and not f.allowed)


def diagnostics_to_findings(diagnostics: list[Diagnostic]) -> list[Finding]:
    return [Finding(d.code, d.span if d.span != NO_SPAN else Span("<rules>", 0, 0), d.message) for d in diagnostics]
