"""Benchmark: explain every recommendation of N patients, against computing the same
answers without proofs. Not a test; copy the figures into the README.

    python bench/bench_explain.py            # N = 1,000

Both sides evaluate the same chunks with the same engine; the proof side then builds
a minimal-height proof of every recommend answer, renders it as text, and (with
--check) runs the independent proof checker over each.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    from generate import generate_patients

    from reasoner import load_facts, load_rules
    from reasoner.engine import Engine
    from reasoner.explain import Explainer
    from reasoner.facts import chunks
    from reasoner.render.proof import to_text
    from reasoner.verify import check_proof

    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--check", action="store_true", help="also run the proof checker on every proof")
    args = parser.parse_args()
    rules = load_rules(ROOT / "rules" / "crs")
    facts = load_facts(rules, text=generate_patients(args.n, seed=11))
    engine = Engine(rules)
    engine.install()

    t0 = time.perf_counter()
    answers = 0
    for chunk in chunks(rules, facts, 50):
        answers += len(engine.evaluate(chunk).tuples("recommend"))
    plain = time.perf_counter() - t0

    t0 = time.perf_counter()
    proofs = nodes = problems = 0
    checking = 0.0
    for chunk in chunks(rules, facts, 50):
        model = engine.evaluate(chunk)
        explainer = Explainer(rules, model)
        for row in sorted(model.tuples("recommend")):
            proof = explainer.prove("recommend", row)
            to_text(proof, rules)
            proofs += 1
            nodes += sum(1 for _ in proof.walk())
            if args.check:  # not part of the explaining time
                c0 = time.perf_counter()
                problems += len(check_proof(proof, rules, facts, model))
                checking += time.perf_counter() - c0
    explained = time.perf_counter() - t0 - checking
    print(f"patients: {args.n}, recommend answers: {answers}, proofs: {proofs}, proof nodes: {nodes}")
    print(f"answers without proofs: {plain:.2f} s")
    print(f"answers with a rendered proof of each: {explained:.2f} s  ({explained / plain:.2f}x)")
    if args.check:
        print(f"proof checker: {problems} problems in {proofs} proofs ({checking:.2f} s, not counted above)")


if __name__ == "__main__":
    main()
