"""JSON objects whose keys are unique: Python's json keeps the last of two equal keys
without a word, and a fact file, a FHIR Bundle or a CDS Hooks request whose weight is
given twice must not be read as the second one silently. `unique_keys` is the decoders'
`object_pairs_hook`; `duplicate_at` finds where the repeat is, for the message.
"""
from __future__ import annotations

import json
from typing import Any

_SKIP = json.JSONDecoder(object_pairs_hook=lambda pairs: None)
"""Decodes a value only to find where it ends (its objects are not built)."""


class DuplicateKey(ValueError):
    """An object with one key twice."""

    def __init__(self, key: str):
        super().__init__(f"the key {json.dumps(key, ensure_ascii=False)} appears twice in one object: "
                         "which value is meant cannot be told")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def duplicate_at(text: str, pos: int = 0) -> int | None:
    """The position of the first repeated key in the JSON value at `pos` (text already known
    to parse, but for the repeat), or None. Each value is skipped by the decoder itself."""
    from reasoner.io.fact_readers import skip_ws as _ws  # here: fact_readers imports this module
    pos = _ws(text, pos)
    if pos >= len(text) or text[pos] not in "{[":
        return None
    closing = "}" if text[pos] == "{" else "]"
    seen: set[str] = set()
    pos = _ws(text, pos + 1)
    while pos < len(text) and text[pos] != closing:
        if closing == "}":
            key_at = pos
            key, pos = _SKIP.raw_decode(text, pos)
            if key in seen:
                return key_at
            seen.add(key)
            pos = _ws(text, _ws(text, pos) + 1)  # past ':'
        inner = duplicate_at(text, pos)
        if inner is not None:
            return inner
        _, pos = _SKIP.raw_decode(text, pos)
        pos = _ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _ws(text, pos + 1)
    return None
