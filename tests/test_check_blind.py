"""A corpus of seeded defects written blind: by someone who had read only docs/checks.md
and docs/language.md, with the expected findings written down before the checker ever
ran (tests/data/check_blind/EXPECTED.md). d*.dl plant one defect each, *_twin.dl are the
same rule sets fixed, n*.dl look like defects and are not, x*.dl are variants added
while fixing what the corpus found (a count past the default bound, `one` across
patients). expected.txt: file, exit status, and each finding as CODE/status/target
(status cut to five letters: `prove`, `searc`, `stati`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner.cli import main

CORPUS = Path(__file__).resolve().parent / "data" / "check_blind"


def _expected() -> list[tuple[str, int, set[str]]]:
    rows = []
    for line in (CORPUS / "expected.txt").read_text(encoding="utf-8").splitlines():
        name, status, *findings = line.split()
        rows.append((name, int(status), set(findings)))
    return rows


@pytest.mark.parametrize("name, status, findings", _expected(), ids=lambda v: v if isinstance(v, str) else "")
def test_blind_seeded_defect(name: str, status: int, findings: set[str]) -> None:
    result = CliRunner().invoke(main, ["check", str(CORPUS / name), "--format", "json"])
    assert result.exit_code == status, result.output
    report = json.loads(result.stdout)
    got = {f"{f['code']}/{(f['status'] or 'static')[:5]}/{f['target']}" for f in report["findings"]}
    assert got == findings


def test_every_rule_file_of_the_corpus_is_listed() -> None:
    listed = {name for name, _, _ in _expected()}
    assert listed == {p.name for p in CORPUS.glob("*.dl")}
