"""Independent cases for why, why-not and integrity constraints, written blind to the
code from the docs and the spec (tests/data/explain_review/README.md has the format)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner.cli import main

CASES = Path(__file__).resolve().parent / "data" / "explain_review"


def _command(case_dir: Path, case: dict) -> list[str]:
    args = list(case["command"]) + [str(case_dir / "facts.facts")]
    if case.get("rules") != "crs":
        args += ["--rules", str(case_dir / "rules.dl")]
    return args


def _without_ids(node):
    if isinstance(node, dict):
        return {k: _without_ids(v) for k, v in node.items() if k != "id"}
    if isinstance(node, list):
        return [_without_ids(v) for v in node]
    return node


@pytest.mark.parametrize("case_dir", sorted(p for p in CASES.iterdir() if p.is_dir()), ids=lambda p: p.name)
def test_review_case(case_dir: Path) -> None:
    case = json.loads((case_dir / "case.json").read_text())
    args = _command(case_dir, case)
    result = CliRunner().invoke(main, args)
    out, err = result.stdout, result.stderr
    context = f"{case['why']}\n$ reasoner {' '.join(args)}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert result.exit_code == case["exit"], context
    assert "Traceback" not in out + err, context
    for text in case.get("stdout_contains", []):
        assert text in out, f"missing {text!r}\n{context}"
    for text in case.get("stdout_not_contains", []):
        assert text not in out, f"must not say {text!r}\n{context}"
    for text in case.get("stderr_contains", []):
        assert text in err, f"missing on stderr {text!r}\n{context}"
    violations = [line for line in err.splitlines() if "violation[" in line]
    assert len(violations) == len(set(violations)), f"a violation reported twice\n{context}"
    if "json_proof_count" in case or "json_distinct_proofs" in case:
        proofs = json.loads(out)["proofs"]
        if "json_proof_count" in case:
            assert len(proofs) == case["json_proof_count"], context
        if "json_distinct_proofs" in case:
            distinct = {json.dumps(_without_ids(p), sort_keys=True) for p in proofs}
            assert len(distinct) == case["json_distinct_proofs"], context
    if case.get("same_output_under_hash_seeds"):
        outputs = set()
        for seed in "0123":
            run = subprocess.run([sys.executable, "-m", "reasoner", *args], capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONHASHSEED=seed))
            outputs.add(run.stdout)
        assert len(outputs) == 1, f"output depends on the hash seed\n{context}"
