"""`reasoner serve`: the rule set as a CDS Hooks 2.0 service over FHIR R4 data, and the
feedback clinicians give on its cards (`reasoner overrides`).

- `outcome`: the service's errors (`ServiceError`, codes E050-E056) and their
  OperationOutcome bodies;
- `hooks`: a CDS Hooks request read and checked (`HookRequest`), the services offered
  (`Service`) and their prefetch templates;
- `data`: the patient's FHIR data from prefetch or from the client's `fhirServer`, and the
  facts read from it (through the one FHIR reader, reasoner/io/fhir.py, and the one fact
  validator);
- `cards`: a patient's report, conflicts and proofs as CDS Hooks cards;
- `feedback`: the embedded database (sqlite3) of the cards issued and the feedback on
  them, and the per-rule override report;
- `app`: the HTTP application (Starlette on uvicorn) and the one engine thread.

Starlette, uvicorn and httpx are imported only here and only when the service starts:
nothing else of the reasoner imports this package (tests/test_startup.py).

May import: language, analysis, io, plan, engines, proof, authoring, domains, render.
"""
