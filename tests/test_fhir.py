"""FHIR R4 in and out (docs/fhir.md): every example patient written as a Bundle and read
back to the same facts; hand-written Bundles (tests/data/fhir/) read to exactly the facts,
problems and notes justified below; a Bundle as a fact file for every command; the
mapping file's own errors; fhir.resources never imported for a plain fact file."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner.analysis.program import load_rules
from reasoner.cli import main
from reasoner.io.facts import load_facts
from reasoner.io.fhir import facts_from_fhir, facts_to_fhir, load_fhir_mapping
from reasoner.language.errors import ReasonerError

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "fhir"
AT = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOCAL = "https://guideline-reasoner.invalid/fhir/CodeSystem/crs"
EXAMPLES = sorted(ROOT.glob("facts/*.facts")) + sorted(ROOT.glob("rules/crs/tests/*.facts"))


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def as_set(facts) -> set:
    return {(f.pred, f.args) for f in facts}


def read(name: str, rules, **kw):
    fhir = facts_from_fhir(json.loads((DATA / name).read_text()), origin=name, **kw)
    facts, problems = fhir.checked(rules)
    return fhir, as_set(facts), problems


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_patient_round_trips_through_a_bundle(path: Path, rules) -> None:
    facts = load_facts(rules, [path]).facts
    bundle = json.loads(json.dumps(facts_to_fhir(facts, assessed_at=AT)))  # as a file would hold it
    back = facts_from_fhir(bundle)
    checked, problems = back.checked(rules)
    assert not problems and not back.notes
    assert as_set(checked) == as_set(facts)


def test_a_bundle_keeps_its_facts_at_another_assessment_time_and_zone(rules) -> None:
    # hours-ago values are differences: the same facts whatever "now" and its zone
    facts = load_facts(rules, [ROOT / "facts/p08_refractory.facts"]).facts
    at = datetime(2025, 3, 30, 1, 30, tzinfo=timezone(timedelta(hours=-5)))
    back = facts_from_fhir(facts_to_fhir(facts, assessed_at=at))
    assert as_set(back.checked(rules)[0]) == as_set(facts) and back.assessed_at == at


# ----------------------------------------------------------------------------- hand-written bundles
def test_units_are_converted_by_their_ucum_codes(rules) -> None:
    fhir, facts, problems = read("units.json", rules)
    assert not problems and fhir.patient == "u1" and fhir.assessed_at == AT
    assert facts == {
        ("weight_kg", ("u1", 70)),               # 154.32 [lb_av] x 0.45359237 = 69.998 -> 70.00 (2 places)
        ("temperature_c", ("u1", 39)),           # max within 24 h: 102.2 [degF] = 39 Cel (100.4 = 38: lower;
                                                 # 104 [degF] is 26 h old: not used)
        ("spo2", ("u1", 93)),
        ("oxygen", ("u1", "nasal_cannula", 4)),  # US Core layout: 3151-8 and the device as SpO2 components
        ("crs_onset", ("u1", 30)),               # D89.832 onset 2026-01-04T06:00Z, 30 h before
        ("icans_grade", ("u1", 1)),              # G92.01
        ("given", ("u1", "tocilizumab", 560, 20)),   # 0.56 g, 20 h before
        ("given", ("u1", "dexamethasone", 10, 2.5)),  # 10000 ug; effectivePeriod.start 09:30, 2.5 h before
        ("antibiotics", ("u1",)),
    }
    assert {(n.resource, n.path) for n in fhir.notes} == {
        ("MedicationRequest/old-order", "status"),  # entered-in-error: no fact
        ("Procedure/echo", ""),                     # a type the mapping does not read
        ("Observation/temp-old", "effective"),      # older than 24 h
        ("Observation/temp-2", "valueQuantity"),    # superseded by the higher temp-1
    }


def test_several_patients_draft_orders_and_references(rules) -> None:
    fhir, facts, problems = read("two_patients.json", rules)
    assert not problems and fhir.patient is None  # two patients: no single one
    assert facts == {
        ("hypotension", ("a1",)),                  # subject by urn:uuid, resolved through the entry's fullUrl
        ("vasopressor", ("a1", "norepinephrine")),  # in progress now; the stopped dopamine is a note
        ("allergy", ("a1", "tocilizumab")),         # patient by an absolute URL with _history
        ("ordered", ("a1", "tocilizumab")),         # status draft: what CDS Hooks order-select sends
        ("withheld", ("a2", "dexamethasone", "car_t_efficacy_concern")),  # doNotPerform with a local reason
        ("oxygen", ("a2", "room_air", 0)),          # room air, no flow: 0 L/min
        ("icans_grade", ("a2", 0)),                 # grade 0 only as an Observation
        ("organ_dysfunction", ("a2", "renal")),
    }
    assert {n.resource for n in fhir.notes} == {"MedicationAdministration/a1-dopamine-stopped",
                                                "Condition/a2-resolved-distress"}


def test_resources_that_cannot_be_mapped_are_errors_by_id_and_path(rules) -> None:
    fhir, facts, problems = read("bad_units.json", rules)
    assert facts == set()
    assert [(p.resource, p.path, p.code) for p in fhir.problems] == [
        ("Observation/temp-mmhg", "valueQuantity.code", "E041"),   # mm[Hg] is no temperature
        ("Observation/weight-no-value", "valueQuantity.value", "E041"),
        ("Observation/spo2-no-ucum", "valueQuantity.system", "E041"),  # a unit without UCUM
        ("MedicationAdministration/unknown-drug", "medicationCodeableConcept", "E041"),  # aspirin: in no table
    ]
    assert "unit 'mm[Hg]' cannot be converted to Cel" in fhir.problems[0].message
    # a heart rate is no input of this rule set: a note, not an error
    assert [(n.resource, n.code) for n in fhir.notes] == [("Observation/heart-rate", "E042")]


def test_a_value_out_of_range_gets_the_fact_validators_own_error(rules, tmp_path) -> None:
    same = tmp_path / "hot.facts"
    same.write_text("temperature_c(h1, 389).\n")
    from_bundle = run("query", "fever(P)", str(DATA / "hot.json"))
    from_facts = run("query", "fever(P)", str(same))
    assert from_bundle.exit_code == from_facts.exit_code == 2
    bundle_line, facts_line = from_bundle.output.strip(), from_facts.output.strip()
    # located at the resource (line 7, col 18) and named by id and element path
    assert bundle_line.startswith(f"{DATA / 'hot.json'}:7:18: error[E005]: Observation/temp-389 valueQuantity: ")
    assert bundle_line.split("valueQuantity: ", 1)[1] == facts_line.split("error[E005]: ", 1)[1]


@pytest.mark.parametrize("name, expected", [
    ("not_json.json", ["not_json.json:2:14: error[E040]: not JSON: Expecting value"]),
    ("not_bundle.json", ["not_bundle.json:1:1: error[E040]: expected a FHIR Bundle (resourceType Bundle) or a JSON "
                         "array of facts, found a Patient resource"]),
    # a time without a zone and an unknown element: both rejected by the R4B models
    ("invalid_r4b.json", ["invalid_r4b.json:7:18: error[E040]: Observation/naive-time effectiveDateTime: fails FHIR "
                          "R4B validation", "invalid_r4b.json:11:18: error[E040]: Observation/weight-bogus bogus: "
                          "fails FHIR R4B validation: Extra inputs are not permitted"]),
])
def test_malformed_bundles(name: str, expected: list[str]) -> None:
    for command in (["facts", "from-fhir"], ["recommend"]):
        result = run(*command, str(DATA / name))
        assert result.exit_code == 2
        lines = [ln for ln in result.output.splitlines() if "error[" in ln]
        assert len(lines) == len(expected)
        for line, start in zip(lines, expected):
            assert line.startswith(str(DATA / start.split(":")[0])) and start.split(".json", 1)[1] in line
        assert "Traceback" not in result.output


# ----------------------------------------------------------------------------- the API
def test_prefetch_values_and_draft_orders_as_an_iterable(rules) -> None:
    patient = {"resourceType": "Patient", "id": "p9"}
    weight = {"resourceType": "Observation", "id": "w", "status": "final", "subject": {"reference": "Patient/p9"},
              "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
              "effectiveDateTime": "2026-01-05T10:00:00Z",
              "valueQuantity": {"value": 80, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
    draft = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "MedicationRequest", "id": "d1", "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/p9"}, "medicationCodeableConcept": {"coding": [{"system": RX,
                                                                                           "code": "612865"}]}}}]}
    fhir = facts_from_fhir([patient, {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": weight}]},
                            draft], assessed_at=AT)
    assert fhir.patient == "p9" and not fhir.problems
    assert as_set(fhir.checked(rules)[0]) == {("weight_kg", ("p9", 80)), ("ordered", ("p9", "tocilizumab"))}


def test_no_assessment_time_is_a_problem_never_the_wall_clock() -> None:
    dose = {"resourceType": "MedicationAdministration", "id": "m", "status": "completed",
            "subject": {"reference": "Patient/p9"}, "effectiveDateTime": "2026-01-05T10:00:00Z",
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": "3264"}]},
            "dosage": {"dose": {"value": 10, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}}
    fhir = facts_from_fhir(dose)
    assert fhir.facts == [] and [(p.resource, p.code) for p in fhir.problems] == [("MedicationAdministration/m",
                                                                                   "E043")]
    assert [f.args for f in facts_from_fhir(dose, assessed_at=AT).facts] == [("p9", "dexamethasone", 10, 2)]
    naive = facts_from_fhir(dose, assessed_at=datetime(2026, 1, 5, 12))
    assert {p.code for p in naive.problems} == {"E043"}


def test_disagreeing_observations_at_the_same_time_are_an_error() -> None:
    def weight(rid: str, kg: int) -> dict:
        return {"resourceType": "Observation", "id": rid, "status": "final", "subject": {"reference": "Patient/p9"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "effectiveDateTime": "2026-01-05T10:00:00Z",
                "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
    fhir = facts_from_fhir([weight("w1", 70), weight("w2", 71)], assessed_at=AT)
    assert fhir.facts == [] and {p.resource for p in fhir.problems} == {"Observation/w1", "Observation/w2"}
    later = weight("w3", 72) | {"effectiveDateTime": "2026-01-05T11:00:00Z"}
    assert [f.args for f in facts_from_fhir([weight("w1", 70), later], assessed_at=AT).facts] == [("p9", 72)]


def test_a_subject_that_is_not_a_patient_is_reported() -> None:
    flag = {"resourceType": "Condition", "id": "c", "subject": {"reference": "Group/g1"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "45007003"}]}}
    fhir = facts_from_fhir(flag, assessed_at=AT)
    assert fhir.facts == [] and [(p.path, p.code) for p in fhir.problems] == [("subject.reference", "E041")]


def test_mapping_file_errors(tmp_path) -> None:
    with pytest.raises(ReasonerError) as missing:
        load_fhir_mapping(tmp_path)
    assert missing.value.code == "E044"
    text = (ROOT / "rules/crs/fhir-map.toml").read_text()
    (tmp_path / "fhir-map.toml").write_text(text.replace('antipyretic = ["rxnorm#161"', 'antipyretic = ["rxnorm#3264"'))
    with pytest.raises(ReasonerError, match="rxnorm#3264 is listed for both drug dexamethasone and drug antipyretic"):
        load_fhir_mapping(tmp_path)


# ----------------------------------------------------------------------------- the commands
def test_recommend_on_a_bundle_gives_the_report_of_the_same_facts() -> None:
    bundle = run("recommend", str(DATA / "units.json"))
    facts = run("recommend", str(DATA / "units.facts"))
    assert bundle.exit_code == facts.exit_code == 0
    assert bundle.stdout == facts.stdout and "Patient u1: CRS grade 2" in facts.stdout


def test_from_fhir_writes_a_facts_file_that_reads_back(tmp_path, rules) -> None:
    out = tmp_path / "u.facts"
    result = run("facts", "from-fhir", str(DATA / "units.json"), "-o", str(out))
    assert result.exit_code == 0
    text = out.read_text()
    assert text.splitlines()[1] == "% Assessed at: 2026-01-05T12:00:00Z (Bundle.timestamp)"
    assert as_set(load_facts(rules, [out]).facts) == as_set(load_facts(rules, [DATA / "units.facts"]).facts)
    again = tmp_path / "again.facts"
    run("facts", "from-fhir", str(DATA / "units.json"), "-o", str(again))
    assert again.read_bytes() == out.read_bytes()


def test_to_fhir_then_from_fhir_on_the_command_line(tmp_path) -> None:
    bundle = tmp_path / "p02.json"
    assert run("facts", "to-fhir", "facts/p02_tocilizumab_allergy.facts", "--assessed-at", "2026-01-05T12:00:00Z",
               "-o", str(bundle)).exit_code == 0
    assert json.loads(bundle.read_text())["type"] == "collection"
    assert run("recommend", str(bundle)).stdout == run("recommend", "facts/p02_tocilizumab_allergy.facts").stdout
    naive = run("facts", "to-fhir", "facts/p02_tocilizumab_allergy.facts", "--assessed-at", "2026-01-05T12:00")
    assert naive.exit_code == 2 and "no time zone" in naive.output


def test_a_plain_fact_file_never_imports_fhir_resources() -> None:
    code = ("import sys; from click.testing import CliRunner; from reasoner.cli import main; "
            "r = CliRunner().invoke(main, ['query', 'crs_grade(P, G)', 'facts/p01_grade2_first_dose.facts']); "
            "assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.startswith(('fhir', 'pydantic', 'reasoner.io.fhir'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_key_given_twice_in_a_bundle_is_refused_where_it_is_repeated(tmp_path: Path) -> None:
    # Python's json keeps the last value: a weight of 65 kg written twice, the second 95,
    # was read as 95 without a word
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    text = json.dumps(bundle, indent=2).replace('"type": "collection"', '"type": "collection",\n  "type": "batch"')
    path = tmp_path / "twice.json"
    path.write_text(text)
    for command in (["facts", "from-fhir"], ["recommend"]):
        result = run(*command, str(path))
        assert result.exit_code == 2
        assert f"{path}:4:3: error[E040]: the key \"type\" appears twice in one object" in result.output, result.output


def bundle_of(tmp_path: Path, name: str, facts_text: str) -> tuple[Path, Path]:
    """A fact file and the Bundle `facts to-fhir` makes of it (assessed 2026-01-05 12:00 UTC)."""
    facts, bundle = tmp_path / f"{name}.facts", tmp_path / f"{name}.json"
    facts.write_text(facts_text)
    assert run("facts", "to-fhir", "--assessed-at", "2026-01-05T12:00:00Z", "-o", str(bundle), str(facts)).exit_code == 0
    return facts, bundle


def test_hours_round_trip_exactly_across_a_threshold(tmp_path: Path) -> None:
    # a dose 7.99999 h ago is under the 8-hour minimum interval (too_soon); to FHIR and back
    # it came out as 8 (hours were rounded to 4 places) and the contraindication was lost
    facts, bundle = bundle_of(tmp_path, "soon", "weight_kg(p1, 72).\ntemperature_c(p1, 38.9).\ncrs_onset(p1, 30).\n"
                              "oxygen(p1, facemask, 8).\ngiven(p1, tocilizumab, 576, 7.99999).\n")
    back = run("facts", "from-fhir", str(bundle))
    assert "given(p1, tocilizumab, 576, 7.99999)." in back.output, back.output
    for source in (facts, bundle):
        result = run("query", "contraindicated(p1, tocilizumab, R)", str(source))
        assert "too_soon" in result.output, result.output


def test_two_administrations_of_one_dose_at_one_time_are_refused_not_counted_once(tmp_path: Path) -> None:
    # facts are a set: three MedicationAdministrations at one time gave one `given` fact,
    # so the 3-in-24-h maximum was not seen and tocilizumab was recommended again
    _, bundle = bundle_of(tmp_path, "p", "weight_kg(p1, 72).\ntemperature_c(p1, 38.9).\noxygen(p1, facemask, 8).\n"
                          "given(p1, tocilizumab, 576, 10).\n")
    doc = json.loads(bundle.read_text())
    dose = next(e for e in doc["entry"] if e["resource"]["resourceType"] == "MedicationAdministration")
    doc["entry"].append({"resource": {**dose["resource"], "id": "again"}})
    bundle.write_text(json.dumps(doc, indent=2))
    for command in (["facts", "from-fhir"], ["recommend"]):
        result = run(*command, str(bundle))
        assert result.exit_code == 2
        assert "error[E041]: MedicationAdministration/again effectiveDateTime: the same dose at the same time as " \
               "MedicationAdministration/" in result.output, result.output


def test_icans_of_unspecified_grade_is_an_error_not_no_icans(tmp_path: Path) -> None:
    # G92.00 gave a note and no fact: the patient read as having no ICANS at all (so an
    # isolated ICANS could not stop tocilizumab); docs/fhir.md says it is an error
    _, bundle = bundle_of(tmp_path, "i", "weight_kg(p1, 72).\nicans_grade(p1, 2).\n")
    text = bundle.read_text()
    assert '"G92.02"' in text
    bundle.write_text(text.replace('"G92.02"', '"G92.00"'))
    result = run("facts", "from-fhir", str(bundle))
    assert result.exit_code == 2
    assert "error[E041]: Condition/" in result.output and "G92.00 states no grade" in result.output, result.output
