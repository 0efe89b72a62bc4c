"""A FHIR Bundle file read as a fact file: the JSON parsed (numbers as written, as
decimals), each entry's resource located by line:col, the resources mapped by
`facts_from_fhir` with the rule set's mapping table, and the facts checked by the one
fact validator. `reasoner.io.fact_readers` hands a `.json` file here when it holds a JSON
object rather than an array of facts; nothing here runs (nor imports fhir.resources)
for any other fact file.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime
from decimal import Decimal

from reasoner.analysis.program import RuleSet
from reasoner.io.fhir import MALFORMED, FhirFacts, facts_from_fhir
from reasoner.io.fact_readers import skip_ws, span_at
from reasoner.io.fhir_map import load_fhir_mapping
from reasoner.io.json_keys import DuplicateKey, duplicate_at, unique_keys
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.syntax import Fact, Span

_DECODER = json.JSONDecoder(parse_float=Decimal)


def read_bundle(text: str, name: str, assessed_at: datetime | None = None,
                rules: RuleSet | str | None = None) -> FhirFacts:
    """The FhirFacts of a Bundle file's text (`name` for messages). Raises ReasonerError
    (E040) when the text is not JSON or not a Bundle, or (E044) the mapping is missing."""
    try:
        data = json.loads(text, parse_float=Decimal, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise ReasonerError.at(span_at(text, name, exc.pos), f"not JSON: {exc.msg}", MALFORMED) from None
    except DuplicateKey as exc:
        raise ReasonerError.at(span_at(text, name, duplicate_at(text) or 0), str(exc), MALFORMED) from None
    except RecursionError:
        raise ReasonerError.at(Span(name, 1, 1), "JSON nested too deeply for a FHIR Bundle", MALFORMED) from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        what = f"a {data['resourceType']} resource" if isinstance(data, dict) and isinstance(
            data.get("resourceType"), str) else "a JSON object without resourceType" if isinstance(data, dict) \
            else "an array of something else" if isinstance(data, list) else "null" if data is None \
            else "true or false" if isinstance(data, bool) else "a string" if isinstance(data, str) else "a number"
        raise ReasonerError.at(Span(name, 1, 1), f"expected a FHIR Bundle (resourceType Bundle) or a JSON array of "
                               f"facts, found {what}", MALFORMED)
    mapping = load_fhir_mapping(rules)
    return facts_from_fhir(data, origin=name, assessed_at=assessed_at, mapping=mapping,
                           spans=_entry_spans(text, name, data))


def bundle_facts(ruleset: RuleSet, text: str, name: str) -> tuple[list[Fact], list[Diagnostic]]:
    """A Bundle file as a fact file: its checked facts and its problems; its notes go to
    stderr as `file:line:col: note[E042]: ...` (they are not errors)."""
    try:
        fhir = read_bundle(text, name, rules=ruleset)
    except ReasonerError as exc:
        return [], list(exc.diagnostics)
    print_notes(fhir)
    return fhir.checked(ruleset)


def print_notes(fhir: FhirFacts) -> None:
    for note in sorted(fhir.notes, key=lambda n: (n.span.file, n.span.line, n.span.col, str(n))):
        print(f"{note.span}: note[{note.code}]: {note}", file=sys.stderr)


def _entry_spans(text: str, name: str, data: dict) -> dict[int, Span]:
    """Where the Bundle and each `entry[i].resource` object begin: a walk over the top
    two levels of the text, each value skipped by the JSON decoder itself."""
    spans = {id(data): span_at(text, name, skip_ws(text, 0))}
    entries = data.get("entry")
    if not isinstance(entries, list):
        return spans
    try:
        for key, pos in _members(text, skip_ws(text, 0)):
            if key == "entry" and text[pos] == "[":
                for i, start in enumerate(_elements(text, pos)):
                    if i < len(entries) and isinstance(entries[i], dict) and text[start] == "{":
                        for k, p in _members(text, start):
                            if k == "resource" and isinstance(entries[i].get("resource"), dict):
                                spans[id(entries[i]["resource"])] = span_at(text, name, p)
    except (ValueError, IndexError):
        pass  # the text parsed whole above: only a key repeated could lead here; spans are a help
    return spans


def _members(text: str, pos: int):
    """(key, position of its value) of the object starting at `pos`."""
    pos = skip_ws(text, pos + 1)
    while text[pos] != "}":
        key, pos = _DECODER.raw_decode(text, pos)
        pos = skip_ws(text, skip_ws(text, pos) + 1)  # past ':'
        yield key, pos
        _, pos = _DECODER.raw_decode(text, pos)
        pos = skip_ws(text, pos)
        if text[pos] == ",":
            pos = skip_ws(text, pos + 1)


def _elements(text: str, pos: int):
    """The start of each element of the array starting at `pos`."""
    pos = skip_ws(text, pos + 1)
    while text[pos] != "]":
        yield pos
        _, pos = _DECODER.raw_decode(text, pos)
        pos = skip_ws(text, pos)
        if text[pos] == ",":
            pos = skip_ws(text, pos + 1)

