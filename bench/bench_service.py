"""Load test of `reasoner serve` (the CDS Hooks service): the service runs as its own
process (`python -m reasoner serve`), the clients in this one.

1. warm-up: 20 requests;
2. `patient-view` latency on the warm service, one request at a time (p02 by default):
   `--sequential` requests, median and p95 (the target: median <= 100 ms);
3. load: `--requests` requests (default 500) from `--clients` concurrent clients
   (default 8), a mix of patient-view, order-select and order-sign over the example
   patients (facts/*.facts written as FHIR by facts_to_fhir), prefetch sent; every
   response must be 200 with a `cards` array: the count of anything else is printed and
   the exit status is 1 if there was one.

    python bench/bench_service.py [--requests 500] [--clients 8] [--sequential 100]

Prints the figures and the machine's load (os.getloadavg) before and after.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reasoner.analysis.rulecache import load  # noqa: E402
from reasoner.io.facts import load_facts  # noqa: E402
from reasoner.io.fhir import facts_to_fhir, load_fhir_mapping  # noqa: E402
from reasoner.language.syntax import Fact  # noqa: E402

AT = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
KEYS = {"Patient": "patient", "Observation": "observations", "Condition": "conditions",
        "MedicationAdministration": "administrations", "MedicationRequest": "requests",
        "AllergyIntolerance": "allergies"}


def requests_for(rules, mapping) -> dict[str, list[tuple[str, dict]]]:
    """hook → [(service path, request)] over the example patients."""
    out: dict[str, list[tuple[str, dict]]] = {"patient-view": [], "order-select": [], "order-sign": []}
    for path in sorted((ROOT / "facts").glob("p*.facts")):
        facts = load_facts(rules, [path]).facts
        patient = str(facts[0].args[0])
        prefetch: dict = {key: None for key in KEYS.values()}
        for entry in facts_to_fhir(facts, assessed_at=AT, mapping=mapping)["entry"]:
            r = entry["resource"]
            key = KEYS[r["resourceType"]]
            if key == "patient":
                prefetch[key] = r
            else:
                prefetch[key] = prefetch[key] or {"resourceType": "Bundle", "type": "searchset", "entry": []}
                prefetch[key]["entry"].append({"resource": r})
        order = next(e["resource"] for e in facts_to_fhir([Fact("ordered", (patient, "tocilizumab"))], assessed_at=AT,
                                                          mapping=mapping)["entry"]
                     if e["resource"]["resourceType"] == "MedicationRequest")
        order = {**order, "id": f"draft-{patient}", "status": "draft"}
        for hook in out:
            context: dict = {"userId": "Practitioner/bench", "patientId": patient}
            if hook != "patient-view":
                context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}
                if hook == "order-select":
                    context["selections"] = [f"MedicationRequest/{order['id']}"]
            out[hook].append((f"/cds-services/crs-{hook}", {
                "hook": hook, "hookInstance": f"bench-{hook}-{patient}", "context": context, "prefetch": prefetch,
                "extension": {"org.guideline-reasoner.assessed-at": "2026-01-05T08:00:00Z"}}))
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=100)
    args = parser.parse_args()
    rules = load(None)
    mapping = load_fhir_mapping(rules)
    work = requests_for(rules, mapping)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen([sys.executable, "-m", "reasoner", "serve", "--port", str(port), "--log-level",
                                   "warning", "--feedback-db", str(Path(folder) / "feedback.sqlite")], cwd=ROOT)
        try:
            started = time.perf_counter()
            while True:
                try:
                    httpx.get(base + "/cds-services", timeout=2)
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.perf_counter() - started > 120:
                        print("the service did not start")
                        return 1
                    time.sleep(0.1)
            print(f"service up in {time.perf_counter() - started:.2f} s")
            return measure(base, work, args)
        finally:
            server.terminate()
            server.wait(30)


def measure(base: str, work: dict[str, list[tuple[str, dict]]], args: argparse.Namespace) -> int:
    with httpx.Client(base_url=base, timeout=60) as client:
        for i in range(20):  # warm-up
            path, doc = work["patient-view"][i % len(work["patient-view"])]
            client.post(path, json=doc)
        path, doc = next((p, d) for p, d in work["patient-view"] if d["context"]["patientId"] == "p02")
        times = []
        for _ in range(args.sequential):
            t = time.perf_counter()
            response = client.post(path, json=doc)
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200
        print(f"patient-view p02, warm, one at a time ({args.sequential}): median {statistics.median(times):.1f} ms, "
              f"p95 {percentile(times, 95):.1f} ms, {len(response.json()['cards'])} cards")
    mix = [item for trio in zip(*work.values()) for item in trio]
    jobs = [mix[i % len(mix)] for i in range(args.requests)]
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    cursor = iter(range(len(jobs)))

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            while True:
                with lock:
                    n = next(cursor, None)
                if n is None:
                    return
                path, doc = jobs[n]
                t = time.perf_counter()
                try:
                    response = client.post(path, json=doc)
                    ok = response.status_code == 200 and isinstance(response.json().get("cards"), list)
                    problem = None if ok else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                with lock:
                    latencies.append((time.perf_counter() - t) * 1000)
                    if problem:
                        errors.append(problem)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    print(f"load: {args.requests} requests, {args.clients} concurrent clients, {len(work['patient-view'])} patients x "
          f"3 hooks: {len(errors)} errors; p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} "
          f"ms, max {max(latencies):.1f} ms; {args.requests / wall:.1f} requests/s ({wall:.1f} s)")
    for problem in errors[:5]:
        print("  error:", problem)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
