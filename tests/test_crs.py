"""Tests of the CRS rule set (rules/crs) against the example patients in facts/ and
tiny inline patients at the ASTCT boundaries.

Every expected answer is justified by the guideline bullet (G: ...) or the grading
criterion (ASTCT: ...) it comes from; "RS:" marks a modelling choice of the rule set
documented in rules/crs/README.md.
"""
from __future__ import annotations

import pathlib

import pytest

from reasoner import evaluate, load_facts, load_rules

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "rules" / "crs"
FACTS_DIR = ROOT / "facts"

# Actions that every patient with CRS grade >= 2 gets, whatever else happens:
GRADE2_CARE = {
    "continue_antimicrobials",  # G: "Continue broad-spectrum antibiotics and antifungal coverage"
    "cardiac_monitoring",  # G: "Perform continuous cardiac monitoring and pulse oximetry"
    "organ_function_monitoring",  # G: "Continue monitoring for signs of organ dysfunction"
    "icans_monitoring",  # G: "Continue to monitor for ... ICANS ... concurrently with or after CRS"
    "daily_labs",  # G: "Perform daily laboratory tests including CBC, CMP, CRP, ferritin, fibrinogen"
    "infection_monitoring",  # G: "Monitor for signs of infection, as both tocilizumab and steroids increase infection risk"
}


@pytest.fixture(scope="module")
def rules():
    return load_rules(RULES_DIR)


def run(rules, *, files=(), text=None, settings=None):
    paths = [str(FACTS_DIR / f) for f in files]
    facts = load_facts(rules, paths, text=text) if text is not None else load_facts(rules, paths)
    model = evaluate(rules, facts, settings=settings) if settings else evaluate(rules, facts)
    # the rule set's integrity constraints (one grade each, nothing contraindicated
    # recommended, one methylprednisolone regimen, ...) must hold for every patient
    assert not list(getattr(model, "violations", [])), model.violations
    return model


def of(model, pred, pid):
    """The tuples of `pred` for patient `pid`, without the patient column."""
    return {t[1:] for t in model.tuples(pred) if t[0] == pid}


def grade(model, pred, pid):
    vals = of(model, pred, pid)
    assert len(vals) == 1, f"{pred} for {pid}: {vals}"
    (val,) = vals
    return val[0]


def answer(model, pid):
    """The complete answer for one patient, in a form that is easy to compare."""
    return {
        "crs_grade": grade(model, "crs_grade", pid),
        "hypoxia_grade": grade(model, "hypoxia_grade", pid),
        "hypotension_grade": grade(model, "hypotension_grade", pid),
        "fever": bool(of(model, "fever", pid)),
        "fever_masked": bool(of(model, "fever_masked", pid)),
        "recommend": {a for (a,) in of(model, "recommend", pid)},
        "conflict": of(model, "conflict", pid),
        "contraindicated": of(model, "contraindicated", pid),
        "alternative": of(model, "alternative", pid),
        "dose_mg": {a: mg for (a, mg) in of(model, "dose_mg", pid)},
        "warning": {w for (w,) in of(model, "warning", pid)},
    }


# ---------------------------------------------------------------------------
# Example patients: complete expected answers
# ---------------------------------------------------------------------------
EXAMPLES = {
    # p01: fever 38.9, nasal cannula 4 L/min, nothing given yet.
    "p01_grade2_first_dose.facts": ("p01", {
        "crs_grade": 2,  # ASTCT: fever + low-flow oxygen (<= 6 L/min) -> grade 2 (G: "Grade 2 CRS is defined by fever with hypoxia requiring low-flow oxygen")
        "hypoxia_grade": 2,  # ASTCT: nasal cannula 4 L/min is low flow
        "hypotension_grade": 0,  # no hypotension
        "fever": True,  # 38.9 >= 38.0
        "recommend": GRADE2_CARE | {
            "tocilizumab",  # G: "Administer tocilizumab 8 mg/kg IV (maximum 800 mg) if not already given"
            "dexamethasone",  # G: "Add dexamethasone 10 mg IV every 6 hours"
            "supplemental_oxygen",  # G: "Provide supplemental oxygen as needed to maintain oxygen saturation >92%" (already on oxygen)
        },  # no antifungal_prophylaxis: antifungal cover present
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 576, "dexamethasone": 10},  # 8 mg/kg x 72 kg = 576 (< 800)
        "warning": set(),
    }),
    # p02: facemask 8 L/min, tocilizumab anaphylaxis.
    "p02_tocilizumab_allergy.facts": ("p02", {
        "crs_grade": 3,  # G: "Grade 3 ... hypoxia requiring high-flow oxygen"; ASTCT: facemask -> 3
        "hypoxia_grade": 3,
        "hypotension_grade": 0,
        "fever": True,
        "recommend": GRADE2_CARE | {
            "dexamethasone",  # G: dexamethasone, "especially if the patient has Grade 3 CRS"
            "supplemental_oxygen",  # G: SpO2 91% <= 92%
            "echocardiogram",  # G: "Assess cardiac function with echocardiogram if not already performed, especially ... Grade 3-4"
            "siltuximab",  # G: "siltuximab (alternative IL-6 antagonist)"; RS: stands in for tocilizumab under allergy
            "icu_transfer",  # vocabulary v2 (ASCO 2021, NCCN): CRS grade 3, not in ICU, distress or not
        },
        "conflict": {("tocilizumab", "allergy")},  # tocilizumab indicated (G: immediate management) but allergic: shown
        "contraindicated": {("tocilizumab", "allergy")},
        "alternative": {("tocilizumab", "siltuximab")},
        "dose_mg": {"dexamethasone": 10, "siltuximab": 715},  # siltuximab 11 mg/kg x 65 kg
        "warning": set(),
    }),
    # p03: HFNC 40 L/min, tocilizumab at 22, 14 and 9 h ago, not improving.
    "p03_tocilizumab_max_24h.facts": ("p03", {
        "crs_grade": 3,  # ASTCT: high-flow nasal cannula -> 3
        "hypoxia_grade": 3,
        "hypotension_grade": 0,
        "fever": True,
        "recommend": GRADE2_CARE | {
            "dexamethasone",  # G: dexamethasone q6h; tocilizumab started only 22 h ago, so no escalation yet
            "supplemental_oxygen",
        },  # no icu_transfer (in ICU), no echocardiogram (done)
        "conflict": {("tocilizumab", "max_doses_24h")},  # G: "if maximum dose has not been reached within 24 hours": 3 doses in 24 h
        "contraindicated": {("tocilizumab", "max_doses_24h")},  # last dose 9 h ago: not too_soon; 3 in all: not max_doses_total
        "alternative": set(),  # the 24-h limit lifts by waiting: no alternative named
        "dose_mg": {"dexamethasone": 10},
        "warning": set(),
    }),
    # p04: nasal cannula 5 L/min, four tocilizumab doses, dexamethasone for 20 h.
    "p04_tocilizumab_max_total.facts": ("p04", {
        "crs_grade": 2,
        "hypoxia_grade": 2,
        "hypotension_grade": 0,
        "fever": True,
        "recommend": GRADE2_CARE | {
            "dexamethasone",  # G: dexamethasone; grade 2, so no methylprednisolone escalation (G: "For Grade 3-4 CRS")
            "supplemental_oxygen",
            "siltuximab",  # vocabulary v2: siltuximab is the alternative IL-6 antagonist when tocilizumab's doses are exhausted
        },  # not refractory: no high-dose methylprednisolone yet
        "conflict": {("tocilizumab", "max_doses_total")},  # G: "second dose of tocilizumab (if maximum dose not reached)": 4 in all
        "contraindicated": {("tocilizumab", "max_doses_total")},  # no dose in the last 24 h (last was 34 h ago)
        "alternative": {("tocilizumab", "siltuximab")},  # blocked for good (all 4 doses used): siltuximab named
        "dose_mg": {"dexamethasone": 10, "siltuximab": 990},  # siltuximab 11 mg/kg x 90 kg (CARTOX)
        "warning": set(),
    }),
    # p05: afebrile, ICANS grade 2, tocilizumab ordered.
    "p05_isolated_icans.facts": ("p05", {
        "crs_grade": 0,  # ASTCT: no fever, no CRS
        "hypoxia_grade": 0,  # room air
        "hypotension_grade": 0,
        "fever": False,
        "recommend": {
            "dexamethasone",  # G: "steroids are the mainstay of ICANS treatment"
            "icans_monitoring",  # G: "Continue to monitor for signs of ICANS"
            "daily_labs",  # G: daily labs (RS: during ICANS too)
            "infection_monitoring",  # G: steroids increase infection risk
        },
        "conflict": {("tocilizumab", "isolated_icans")},  # ordered + G: "tocilizumab may not be effective for ICANS and could potentially contribute to it"
        "contraindicated": {("tocilizumab", "isolated_icans")},
        "alternative": set(),
        "dose_mg": {"dexamethasone": 10},
        "warning": {"tocilizumab_for_icans"},  # same pitfall
    }),
    # p06: nasal cannula 2 L/min, tocilizumab 10 h ago, dexamethasone, no antifungal.
    "p06_steroids_without_antifungal.facts": ("p06", {
        "crs_grade": 2,
        "hypoxia_grade": 2,
        "hypotension_grade": 0,
        "fever": True,
        "recommend": GRADE2_CARE | {
            "tocilizumab",  # G: repeat "if maximum dose has not been reached within 24 hours": 1 dose, 10 h ago (>= 8 h), not improving
            "dexamethasone",
            "supplemental_oxygen",
            "antifungal_prophylaxis",  # G: "Strongly consider antifungal prophylaxis in patients receiving steroids"
        },
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 480, "dexamethasone": 10},  # 8 x 60 kg
        "warning": {"steroids_without_antifungal"},  # same pitfall
    }),
    # p07: HFNC 30 L/min, one tocilizumab dose 26 h ago, not improving.
    "p07_no_improvement_24h.facts": ("p07", {
        "crs_grade": 3,
        "hypoxia_grade": 3,
        "hypotension_grade": 0,
        "fever": True,
        "recommend": GRADE2_CARE | {
            "tocilizumab",  # G: "If no improvement within 24 hours: Administer a second dose of tocilizumab"
            "methylprednisolone",  # G: "For Grade 3-4 CRS with no improvement after tocilizumab, escalate to high-dose methylprednisolone"
            "supplemental_oxygen",
        },  # dexamethasone replaced by methylprednisolone (RS); not refractory: steroids started 6 h ago
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 600, "methylprednisolone": 500},  # 8 x 75; G: 500 mg IV every 12 hours
        "warning": set(),
    }),
    # p08: norepinephrine + NC 4 L/min; tocilizumab x3, dexamethasone, then
    # methylprednisolone for 34 h; still febrile and not improving; ICANS 1; AKI.
    "p08_refractory.facts": ("p08", {
        "crs_grade": 3,  # G: "Grade 3 ... hypotension requiring vasopressors"
        "hypoxia_grade": 2,
        "hypotension_grade": 3,  # ASTCT: one vasopressor
        "fever": True,
        "recommend": GRADE2_CARE | {
            "tocilizumab",  # G: tocilizumab "if maximum dose not reached": 3 in all, none in 24 h
            "methylprednisolone_pulse",  # G: "For severe refractory cases, consider methylprednisolone 1,000 mg IV twice daily"
            "anakinra",  # G: "Consider anakinra ... if no improvement with tocilizumab and steroids"
            "ruxolitinib", "cyclophosphamide", "cytokine_adsorption",  # G: "Other options include ..."
            "supplemental_oxygen",
            "vasopressors",  # G: "Consider vasopressors if hypotension persists despite fluid resuscitation"
        },  # 500 mg methylprednisolone replaced by the 1,000 mg regimen (RS); ICU and echo already done;
        # no siltuximab: tocilizumab is still recommended (vocabulary v2: no dual IL-6 blockade)
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 544, "methylprednisolone_pulse": 1000, "anakinra": 100},
        "warning": {"icans_tocilizumab_caution"},  # G: tocilizumab "could potentially contribute to" ICANS (ICANS grade 1 present)
    }),
    # p09: fever 38.4 for 80 h, no oxygen, normal blood pressure.
    "p09_persistent_grade1.facts": ("p09", {
        "crs_grade": 1,  # ASTCT: fever only
        "hypoxia_grade": 0,
        "hypotension_grade": 0,
        "fever": True,
        "recommend": {
            "tocilizumab",  # G: "preemptive use of tocilizumab for persistent Grade 1 CRS" (80 h >= 72 h default)
            "organ_function_monitoring", "icans_monitoring", "daily_labs",
            "infection_monitoring",  # tocilizumab called for
        },  # no dexamethasone, no cardiac monitoring: grade 1
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 440},  # 8 x 55
        "warning": set(),
    }),
    # p10: fever 39.1, hypotension, no fluid bolus yet, room air.
    "p10_hypotension_before_fluids.facts": ("p10", {
        "crs_grade": 2,  # ASTCT: hypotension not needing vasopressors -> 2
        "hypoxia_grade": 0,
        "hypotension_grade": 2,
        "fever": True,
        "recommend": GRADE2_CARE | {
            "tocilizumab", "dexamethasone",
            "iv_fluids",  # G: "Administer IV fluids for volume resuscitation if hypotensive"
        },  # no oxygen: SpO2 96% on room air
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 560, "dexamethasone": 10},
        "warning": set(),
    }),
    # p11: hypotension after fluid boluses, no vasopressor, NC 2 L/min, tocilizumab 9 h ago.
    "p11_hypotension_after_fluids.facts": ("p11", {
        "crs_grade": 2,
        "hypoxia_grade": 2,
        "hypotension_grade": 2,
        "fever": True,
        "recommend": GRADE2_CARE | {
            "tocilizumab",  # repeat: 9 h since the last dose (>= 8 h), 1 dose in 24 h, not improving
            "dexamethasone",
            "supplemental_oxygen",
            "vasopressors",  # G: "Consider vasopressors if hypotension persists despite fluid resuscitation"
        },  # no more iv_fluids: bolus already given
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 672, "dexamethasone": 10},
        "warning": set(),
    }),
    # p12: ventilated, norepinephrine + vasopressin, tocilizumab at 30 and 12 h,
    # dexamethasone since 30 h, temperature 37.6 (masked), ICANS 3, 120 kg.
    "p12_grade4_ventilated.facts": ("p12", {
        "crs_grade": 4,  # ASTCT: mechanical ventilation -> 4; masked fever counts
        "hypoxia_grade": 4,
        "hypotension_grade": 3,  # ASTCT: one vasopressor plus vasopressin is still 3
        "fever": False,  # 37.6 C: no real fever (vocabulary v2)
        "fever_masked": True,  # tocilizumab given after CRS onset: grading by hypoxia and hypotension
        "recommend": GRADE2_CARE | {
            "tocilizumab",  # 2 doses in all, 1 in 24 h, last 12 h ago: maximum not reached
            "methylprednisolone",  # G: grade 3-4, no improvement 24 h after tocilizumab
            # no refractory alternatives yet: vocabulary v2 (ASCO's sequence) needs high-dose methylprednisolone to fail first
            "supplemental_oxygen",
            "vasopressors",  # still hypotensive after fluids
            "echocardiogram",  # G: not already performed, grade 4
        },  # no icu_transfer: already in ICU; no dexamethasone: replaced by methylprednisolone
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 800, "methylprednisolone": 500},  # 8 x 120 = 960 -> capped at 800
        "warning": {"icans_tocilizumab_caution"},  # ICANS grade 3 with tocilizumab recommended
    }),
    # p13: 37.4 C after tocilizumab 14 h ago (given after onset), NC 3 L/min.
    "p13_masked_fever.facts": ("p13", {
        "crs_grade": 2,  # ASTCT: fever not needed after anti-cytokine therapy
        "hypoxia_grade": 2,
        "hypotension_grade": 0,
        "fever": False,  # 37.4 C
        "fever_masked": True,  # tocilizumab 14 h ago, after onset 20 h ago
        "recommend": GRADE2_CARE | {"tocilizumab", "dexamethasone", "supplemental_oxygen"},
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 496, "dexamethasone": 10},
        "warning": set(),
    }),
    # p14: afebrile, hypotensive from poor intake.
    "p14_afebrile_grade0.facts": ("p14", {
        "crs_grade": 0,  # ASTCT: CRS needs fever
        "hypoxia_grade": 0,
        "hypotension_grade": 2,  # the hemodynamic grade is still reported
        "fever": False,
        "recommend": {"iv_fluids"},  # G: "IV fluids ... if hypotensive"; nothing CRS-specific
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {},
        "warning": set(),
    }),
    # p15: non-rebreather, respiratory distress on the ward, tocilizumab and
    # dexamethasone withheld for CAR T efficacy concerns.
    "p15_withheld_car_t_efficacy.facts": ("p15", {
        "crs_grade": 3,  # ASTCT: non-rebreather -> 3
        "hypoxia_grade": 3,
        "hypotension_grade": 0,
        "fever": True,
        "recommend": GRADE2_CARE | {
            "tocilizumab", "dexamethasone",  # withheld, but still recommended (G: "Do not delay")
            "icu_transfer",  # G: "Transfer to ICU ... Grade 3 CRS with significant respiratory distress"
            "supplemental_oxygen", "echocardiogram",
        },
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {"tocilizumab": 560, "dexamethasone": 10},
        "warning": {"withheld_for_car_t_efficacy"},  # G: "Do not delay ... due to concerns about CAR T-cell efficacy"
    }),
    # p16: dexamethasone prophylaxis 60 h ago, CRS onset 40 h ago, now 37.5 C.
    "p16_prophylaxis_before_onset.facts": ("p16", {
        "crs_grade": 0,  # dose before onset does not mask fever (ASTCT applies after CRS is established)
        "hypoxia_grade": 0,
        "hypotension_grade": 0,
        "fever": False,
        "recommend": {
            "icans_monitoring",  # G: ICANS "may occur ... after CRS"
            "infection_monitoring",  # a steroid was given
        },  # no antifungal prophylaxis: prophylactic dose is not "steroids for CRS treatment"
        "conflict": set(),
        "contraindicated": set(),
        "alternative": set(),
        "dose_mg": {},
        "warning": {"prophylaxis_may_mask_fever"},  # clinical reference 1.1: flag for review
    }),
}


@pytest.mark.parametrize("fname", sorted(EXAMPLES))
def test_example_patient(rules, fname):
    pid, expected = EXAMPLES[fname]
    model = run(rules, files=[fname])
    got = answer(model, pid)
    if "fever_masked" not in expected:  # stated where it decides the grade
        del got["fever_masked"]
    assert got == expected


def test_examples_cover_every_section(rules):
    """The example files together exercise every guideline section."""
    model = run(rules, files=sorted(EXAMPLES))
    recommended = {a for (_, a) in model.tuples("recommend")}
    for action in [
        "tocilizumab", "dexamethasone", "icu_transfer", "continue_antimicrobials", "cardiac_monitoring",  # immediate
        "methylprednisolone", "methylprednisolone_pulse",  # no improvement
        "anakinra", "siltuximab", "ruxolitinib", "cyclophosphamide", "cytokine_adsorption",  # refractory
        "supplemental_oxygen", "iv_fluids", "vasopressors", "organ_function_monitoring",  # supportive
        "antifungal_prophylaxis", "icans_monitoring",  # pitfalls
        "daily_labs", "infection_monitoring", "echocardiogram",  # monitoring
    ]:
        assert action in recommended, action
    reasons = {r for (_, _, r) in model.tuples("conflict")}
    assert reasons == {"allergy", "max_doses_24h", "max_doses_total", "isolated_icans"}
    assert {g for (_, g) in model.tuples("crs_grade")} == {0, 1, 2, 3, 4}


def test_dose_frequency_for_every_dose(rules):
    model = run(rules, files=sorted(EXAMPLES))
    dosed = {(p, a) for (p, a, _) in model.tuples("dose_mg")}
    with_freq = {(p, a) for (p, a, _) in model.tuples("dose_frequency")}
    assert dosed <= with_freq
    freq = {(p, a): t for (p, a, t) in model.tuples("dose_frequency")}
    assert freq[("p01", "dexamethasone")] == "IV every 6 h"  # G: "every 6 hours"
    assert "every 12 h for 3 days" in freq[("p07", "methylprednisolone")]  # G: "every 12 hours for 3 days, followed by tapering"
    assert freq[("p08", "methylprednisolone_pulse")] == "IV twice daily"  # G: "1,000 mg IV twice daily"
    assert freq[("p05", "dexamethasone")].startswith("IV once")  # ICANS grade 2 without CRS (NCCN)


def test_cohort_is_consistent(rules):
    """facts/cohort.facts: every patient gets one grade each, nothing recommended is contraindicated."""
    model = run(rules, files=["cohort.facts"])
    patients = {p for (p, _) in model.tuples("crs_grade")}
    assert len(patients) == 200
    for pred in ("crs_grade", "hypoxia_grade", "hypotension_grade"):
        assert len(model.tuples(pred)) == 200, pred
    contra = {(p, a) for (p, a, _) in model.tuples("contraindicated")}
    assert not ({(p, a) for (p, a) in model.tuples("recommend")} & contra)


def test_cohort_file_matches_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", ROOT / "bench" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.generate_patients(200, 1) == (FACTS_DIR / "cohort.facts").read_text()
    assert gen.generate_patients(5, 7) == gen.generate_patients(5, 7)


# ---------------------------------------------------------------------------
# ASTCT boundaries with tiny inline patients
# ---------------------------------------------------------------------------
def grades(rules, text, pid="x", settings=None):
    model = run(rules, text=text, settings=settings)
    return (grade(model, "crs_grade", pid), grade(model, "hypoxia_grade", pid),
            grade(model, "hypotension_grade", pid))


@pytest.mark.parametrize("temp, expected", [(37.9, 0), (38.0, 1), (38, 1), (38.1, 1)])
def test_fever_threshold_is_inclusive(rules, temp, expected):
    # ASTCT: fever is >= 38.0 C; 37.9 is not fever
    assert grades(rules, f"temperature_c(x, {temp}).")[0] == expected


@pytest.mark.parametrize("device, lpm, expected", [
    ("nasal_cannula", 6, 2),  # ASTCT: low flow is <= 6 L/min
    ("nasal_cannula", 6.5, 3),  # ASTCT: high flow is > 6 L/min
    ("nasal_cannula", 7, 3),
    ("nasal_cannula", 0.5, 2),
    ("nasal_cannula", 0, 1),  # RS: a cannula at 0 L/min gives no oxygen
    ("blow_by", 2, 2),  # ASTCT: blow-by is low flow
    ("facemask", 2, 3),  # ASTCT: masks are grade 3 at any flow
    ("nonrebreather", 15, 3),
    ("venturi_mask", 4, 3),
    ("high_flow_nasal_cannula", 20, 3),
    ("cpap", 10, 4),  # ASTCT: positive pressure is grade 4
    ("bipap", 10, 4),
    ("mechanical_ventilation", 12, 4),
    ("room_air", 0, 1),
])
def test_oxygen_devices(rules, device, lpm, expected):
    text = f"temperature_c(x, 38.5).\noxygen(x, {device}, {lpm}).\n"
    crs, hypoxia, _ = grades(rules, text)
    assert crs == expected
    assert hypoxia == (0 if expected == 1 else expected)


def test_worst_oxygen_device_wins(rules):
    text = "temperature_c(x, 38.5).\noxygen(x, nasal_cannula, 2).\noxygen(x, bipap, 10).\n"
    assert grades(rules, text) == (4, 4, 0)


@pytest.mark.parametrize("pressors, expected", [
    ([], 2),  # ASTCT: hypotension without vasopressor -> 2
    (["norepinephrine"], 3),  # one vasopressor -> 3
    (["norepinephrine", "vasopressin"], 3),  # with vasopressin: still 3
    (["vasopressin"], 3),  # vasopressin alone -> 3
    (["norepinephrine", "epinephrine"], 4),  # two non-vasopressin vasopressors -> 4
    (["norepinephrine", "phenylephrine", "vasopressin"], 4),
])
def test_vasopressor_counting(rules, pressors, expected):
    text = "temperature_c(x, 38.5).\nhypotension(x).\n" + "".join(
        f"vasopressor(x, {d}).\n" for d in pressors)
    assert grades(rules, text) == (expected, 0, expected)


def test_running_vasopressor_counts_without_hypotension_flag(rules):
    # RS: a vasopressor running now means "hypotension requiring vasopressors", even if
    # the pressure it supports is normal (no hypotension fact)
    assert grades(rules, "temperature_c(x, 38.5).\nvasopressor(x, norepinephrine).\n") == (3, 0, 3)


def test_hypotension_without_fever_is_not_crs(rules):
    text = "temperature_c(x, 37.0).\nhypotension(x).\nvasopressor(x, norepinephrine).\nvasopressor(x, dopamine).\n"
    assert grades(rules, text) == (0, 0, 4)


def test_masked_fever_after_tocilizumab_given_after_onset(rules):
    # ASTCT: after anti-cytokine therapy for established CRS, fever is no longer needed
    text = ("temperature_c(x, 37.0).\ncrs_onset(x, 30).\ngiven(x, tocilizumab, 560, 10).\n"
            "oxygen(x, nasal_cannula, 3).\n")
    assert grades(rules, text) == (2, 2, 0)


def test_masked_fever_dose_at_onset_counts(rules):
    # H <= On: a dose given at onset (same hour) masks
    text = "temperature_c(x, 37.0).\ncrs_onset(x, 30).\ngiven(x, dexamethasone, 10, 30).\noxygen(x, facemask, 5).\n"
    assert grades(rules, text) == (3, 3, 0)


@pytest.mark.parametrize("drug", ["antipyretic", "siltuximab", "anakinra", "methylprednisolone"])
def test_masked_fever_other_drugs(rules, drug):
    # vocabulary v2 / ASTCT: after a masking drug, "grading is driven by hypotension and/or
    # hypoxia": grade 0 with neither (the masked fever no longer keeps CRS at grade 1 for ever),
    # grade 2 with low-flow oxygen
    text = f"temperature_c(x, 37.0).\ncrs_onset(x, 30).\ngiven(x, {drug}, 100, 5).\n"
    model = run(rules, text=text)
    assert of(model, "fever_masked", "x") == {()} and of(model, "fever", "x") == set()
    assert grades(rules, text)[0] == 0
    assert grades(rules, text + "oxygen(x, nasal_cannula, 2).\n")[0] == 2


def test_drug_before_onset_does_not_mask(rules):
    text = ("temperature_c(x, 37.0).\ncrs_onset(x, 30).\ngiven(x, tocilizumab, 560, 40).\n"
            "oxygen(x, nasal_cannula, 3).\n")
    model = run(rules, text=text)
    assert grade(model, "crs_grade", "x") == 0
    assert of(model, "warning", "x") == {("prophylaxis_may_mask_fever",)}


def test_masking_needs_crs_onset(rules):
    # no crs_onset: CRS was never established, so the drug masks nothing
    text = "temperature_c(x, 37.0).\ngiven(x, tocilizumab, 560, 10).\n"
    assert grades(rules, text)[0] == 0


def test_ruxolitinib_does_not_mask(rules):
    # RS: the vocabulary's list (antipyretic, tocilizumab, siltuximab, anakinra, corticosteroids)
    text = "temperature_c(x, 37.0).\ncrs_onset(x, 30).\ngiven(x, ruxolitinib, 10, 5).\n"
    assert grades(rules, text)[0] == 0


def test_organ_dysfunction_does_not_change_grade(rules):
    # ASTCT: organ toxicities are graded with CTCAE and do not change the CRS grade
    base = "temperature_c(x, 38.5).\noxygen(x, nasal_cannula, 2).\n"
    organs = "".join(f"organ_dysfunction(x, {o}).\n" for o in ["cardiac", "hepatic", "renal", "pulmonary", "neurologic"])
    assert grades(rules, base) == grades(rules, base + organs) == (2, 2, 0)


def test_icans_does_not_change_grade(rules):
    base = "temperature_c(x, 38.5).\n"
    assert grades(rules, base + "icans_grade(x, 4).\n")[0] == 1


def test_every_patient_gets_grade_zero_without_fever(rules):
    # patient(P) is derived from every input predicate, so a lone fact still grades
    for fact in ["weight_kg(x, 70).", "spo2(x, 97).", "in_icu(x).", "allergy(x, anakinra).",
                 "withheld(x, dexamethasone, other).", "organ_dysfunction(x, renal).", "echo_done(x)."]:
        assert grades(rules, fact + "\n") == (0, 0, 0), fact


# ---------------------------------------------------------------------------
# Doses
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kg, mg", [(72, 576), (120, 800), (100, 800), (99, 792), (72.5, 580), (50, 400)])
def test_tocilizumab_dose_cap(rules, kg, mg):
    # G: "tocilizumab 8 mg/kg IV (maximum 800 mg)"
    text = f"weight_kg(x, {kg}).\ntemperature_c(x, 38.5).\noxygen(x, nasal_cannula, 3).\n"
    model = run(rules, text=text)
    assert of(model, "dose_mg", "x") >= {("tocilizumab", mg)}
    assert {m for (a, m) in of(model, "dose_mg", "x") if a == "tocilizumab"} == {mg}


def test_no_weight_means_warning_not_silent(rules):
    text = "temperature_c(x, 38.5).\noxygen(x, nasal_cannula, 3).\n"
    model = run(rules, text=text)
    assert ("tocilizumab",) in of(model, "recommend", "x")
    assert not {a for (a, _) in of(model, "dose_mg", "x") if a == "tocilizumab"}
    assert ("no_weight_for_dose",) in of(model, "warning", "x")


def test_under_30kg_dose_warning(rules):
    text = "weight_kg(x, 20).\ntemperature_c(x, 38.5).\noxygen(x, blow_by, 2).\n"
    model = run(rules, text=text)
    assert ("tocilizumab", 160) in of(model, "dose_mg", "x")
    assert ("toci_dose_under_30kg",) in of(model, "warning", "x")


# ---------------------------------------------------------------------------
# Tocilizumab limits and timing
# ---------------------------------------------------------------------------
GRADE2_NOT_IMPROVING = "weight_kg(x, 70).\ntemperature_c(x, 38.5).\ncrs_onset(x, 100).\noxygen(x, nasal_cannula, 3).\nantifungal(x).\n"


def toci_state(rules, doses, extra=""):
    text = GRADE2_NOT_IMPROVING + extra + "".join(f"given(x, tocilizumab, 560, {h}).\n" for h in doses)
    model = run(rules, text=text)
    return ("tocilizumab",) in of(model, "recommend", "x"), {r for (a, r) in of(model, "contraindicated", "x") if a == "tocilizumab"}


def test_too_soon_under_8h(rules):
    assert toci_state(rules, [7.9]) == (False, {"too_soon"})
    assert toci_state(rules, [8]) == (True, set())


def test_three_doses_in_24h(rules):
    assert toci_state(rules, [23.5, 15, 9]) == (False, {"max_doses_24h"})
    assert toci_state(rules, [24, 15, 9]) == (True, set())  # a dose exactly 24 h ago has left the window


def test_four_doses_in_all(rules):
    assert toci_state(rules, [90, 70, 50, 30]) == (False, {"max_doses_total"})
    assert toci_state(rules, [70, 50, 30]) == (True, set())


def test_several_reasons_at_once(rules):
    assert toci_state(rules, [20, 12, 4, 60]) == (False, {"too_soon", "max_doses_24h", "max_doses_total"})


def test_improving_patient_gets_no_repeat_dose(rules):
    assert toci_state(rules, [20], extra="improving(x).\n") == (False, set())


def test_alternative_when_doses_exhausted_and_refractory(rules):
    text = GRADE2_NOT_IMPROVING + "".join(f"given(x, tocilizumab, 560, {h}).\n" for h in [90, 70, 50, 30]) + \
        "given(x, dexamethasone, 10, 40).\ngiven(x, dexamethasone, 10, 4).\n"
    model = run(rules, text=text)
    assert of(model, "conflict", "x") == {("tocilizumab", "max_doses_total")}
    # vocabulary v2: siltuximab is the alternative once tocilizumab's doses are exhausted;
    # anakinra only after high-dose methylprednisolone failed too (not here: grade 2)
    assert of(model, "alternative", "x") == {("tocilizumab", "siltuximab")}
    assert "anakinra" not in {a for (a,) in of(model, "recommend", "x")}


def test_siltuximab_not_repeated(rules):
    text = "weight_kg(x, 70).\ntemperature_c(x, 38.5).\noxygen(x, facemask, 6).\nallergy(x, tocilizumab).\n" \
        "given(x, siltuximab, 770, 30).\ncrs_onset(x, 40).\n"
    model = run(rules, text=text)
    assert ("siltuximab",) not in of(model, "recommend", "x")
    assert of(model, "alternative", "x") == set()


def test_tocilizumab_after_or_beside_siltuximab_is_flagged_as_dual_il6_blockade(rules):
    # vocabulary v2: "no dual IL-6 blockade". Siltuximab given (at any time on record) or
    # ordered while tocilizumab is recommended: a warning, tocilizumab stays recommended
    base = "weight_kg(x, 70).\ntemperature_c(x, 38.5).\noxygen(x, nasal_cannula, 4).\ncrs_onset(x, 20).\n"
    for extra in ("given(x, siltuximab, 770, 6).\n", "ordered(x, siltuximab).\n",
                  "given(x, siltuximab, 770, 30).\n"):  # before onset too: IL-6 stays blocked for weeks
        model = run(rules, text=base + extra)
        assert ("tocilizumab",) in of(model, "recommend", "x")
        assert ("dual_il6_blockade",) in of(model, "warning", "x"), extra
    assert ("dual_il6_blockade",) not in of(run(rules, text=base), "warning", "x")
    # siltuximab given and tocilizumab not recommended (allergy): nothing to flag
    model = run(rules, text=base + "allergy(x, tocilizumab).\ngiven(x, siltuximab, 770, 6).\n")
    assert ("dual_il6_blockade",) not in of(model, "warning", "x")


def test_allergy_blocks_alternative(rules):
    text = "weight_kg(x, 70).\ntemperature_c(x, 38.5).\noxygen(x, facemask, 6).\n" \
        "allergy(x, tocilizumab).\nallergy(x, siltuximab).\n"
    model = run(rules, text=text)
    assert of(model, "conflict", "x") == {("tocilizumab", "allergy"), ("siltuximab", "allergy")}
    assert of(model, "alternative", "x") == set()


def test_steroid_allergy_blocks_both_methylprednisolone_regimens(rules):
    text = "allergy(x, methylprednisolone).\nordered(x, methylprednisolone).\n"
    model = run(rules, text=text)
    assert of(model, "contraindicated", "x") == {("methylprednisolone", "allergy"), ("methylprednisolone_pulse", "allergy")}
    assert of(model, "conflict", "x") == {("methylprednisolone", "allergy"), ("methylprednisolone_pulse", "allergy")}


# ---------------------------------------------------------------------------
# Persistent grade 1 (setting grade1_persistent_hours)
# ---------------------------------------------------------------------------
def grade1(onset, extra=""):
    return f"weight_kg(x, 60).\ntemperature_c(x, 38.3).\ncrs_onset(x, {onset}).\n{extra}"


def toci_recommended(rules, text, settings=None):
    return ("tocilizumab",) in of(run(rules, text=text, settings=settings), "recommend", "x")


def test_persistent_grade1_default_more_than_72h(rules):
    # clinical reference 3.5 [V] (ASCO 2021, CARTOX): "Fever lasting > 3 days (72 h)"
    assert toci_recommended(rules, grade1(73))
    assert toci_recommended(rules, grade1(72.5))
    assert not toci_recommended(rules, grade1(72))
    assert not toci_recommended(rules, grade1(71))


def test_persistent_grade1_setting_24h(rules):
    assert toci_recommended(rules, grade1(30), settings={"grade1_persistent_hours": 24})
    assert not toci_recommended(rules, grade1(30))
    assert not toci_recommended(rules, grade1(80), settings={"grade1_persistent_hours": 100})


def test_persistent_grade1_needs_measured_fever_and_no_improvement(rules):
    assert not toci_recommended(rules, grade1(80, "improving(x).\n"))
    text = "weight_kg(x, 60).\ntemperature_c(x, 37.2).\ncrs_onset(x, 80).\ngiven(x, antipyretic, 1000, 2).\n"
    assert not toci_recommended(rules, text)  # masked grade 1: no measured fever


# ---------------------------------------------------------------------------
# No improvement / refractory clocks
# ---------------------------------------------------------------------------
GRADE3 = "weight_kg(x, 70).\ntemperature_c(x, 38.5).\ncrs_onset(x, 100).\noxygen(x, high_flow_nasal_cannula, 30).\nantifungal(x).\n"


def recs(rules, text, settings=None):
    return {a for (a,) in of(run(rules, text=text, settings=settings), "recommend", "x")}


def test_methylprednisolone_after_24h_of_tocilizumab(rules):
    assert "methylprednisolone" not in recs(rules, GRADE3 + "given(x, tocilizumab, 560, 23).\n")
    r = recs(rules, GRADE3 + "given(x, tocilizumab, 560, 24).\n")
    assert "methylprednisolone" in r and "dexamethasone" not in r


def test_no_methylprednisolone_for_grade2(rules):
    r = recs(rules, GRADE2_NOT_IMPROVING + "given(x, tocilizumab, 560, 30).\n")
    assert "methylprednisolone" not in r and "dexamethasone" in r


def test_no_escalation_when_improving(rules):
    r = recs(rules, GRADE3 + "given(x, tocilizumab, 560, 30).\nimproving(x).\n")
    assert "methylprednisolone" not in r and "dexamethasone" in r and "tocilizumab" not in r


def test_methylprednisolone_on_record_never_escalates_by_itself(rules):
    # vocabulary v2: "Steroid escalation follows the patient's CRS state, never the drug
    # history alone." Improving at grade 3 mid-course: no new 500 mg order, and no
    # dexamethasone on top of the high-dose methylprednisolone already running.
    r = recs(rules, GRADE3 + "given(x, tocilizumab, 560, 40).\ngiven(x, methylprednisolone, 500, 10).\nimproving(x).\n")
    assert "methylprednisolone" not in r and "dexamethasone" not in r
    # a 60 mg taper step, afebrile on room air and improving: CRS grade 0, nothing to escalate
    taper = ("weight_kg(x, 70).\ntemperature_c(x, 36.9).\ncrs_onset(x, 150).\noxygen(x, room_air, 0).\n"
             "given(x, tocilizumab, 560, 140).\ngiven(x, methylprednisolone, 500, 110).\n"
             "given(x, methylprednisolone, 60, 10).\nimproving(x).\nantifungal(x).\n")
    model = run(rules, text=taper)
    assert grade(model, "crs_grade", "x") == 0
    assert not {"methylprednisolone", "methylprednisolone_pulse", "dexamethasone"} & recs(rules, taper)


def test_refractory_needs_tocilizumab_and_high_dose_methylprednisolone(rules):
    # vocabulary v2 (ASCO's sequence): the alternatives come after tocilizumab AND high-dose
    # methylprednisolone failed; dexamethasone alone does not open them, and tocilizumab still
    # recommended means no siltuximab (no dual IL-6 blockade)
    alternatives = {"anakinra", "ruxolitinib", "cyclophosphamide", "cytokine_adsorption", "methylprednisolone_pulse"}
    only_toci = GRADE3 + "given(x, tocilizumab, 560, 40).\n"
    assert not alternatives & recs(rules, only_toci)
    assert not alternatives & recs(rules, only_toci + "given(x, dexamethasone, 10, 30).\n")
    assert not alternatives & recs(rules, only_toci + "given(x, methylprednisolone, 500, 23).\n")
    r = recs(rules, only_toci + "given(x, methylprednisolone, 500, 24).\ngiven(x, methylprednisolone, 500, 12).\n")
    assert alternatives <= r and "siltuximab" not in r and "tocilizumab" in r and "methylprednisolone" not in r
    # a 1 mg/kg dose (for ICANS) is not high-dose: it starts no clock
    assert not alternatives & recs(rules, only_toci + "given(x, methylprednisolone, 70, 30).\n")


def heavy_grade3(kg, *doses):
    return (GRADE3.replace("weight_kg(x, 70)", f"weight_kg(x, {kg})") + "given(x, tocilizumab, 800, 40).\n"
            + "".join(f"given(x, methylprednisolone, {mg}, {h}).\n" for mg, h in doses))


def test_two_mg_per_kg_is_never_the_high_dose_course_however_heavy_the_patient(rules):
    # G: "escalate to high-dose methylprednisolone: 500 mg IV every 12 hours"; 1-2 mg/kg q12h
    # is the standard dose (NCCN; clinical reference 3.1 [V]). 2 mg/kg at 130 kg is 260 mg:
    # over the 250 mg taper-step threshold, but not high-dose, so no refractory options
    # yet: escalate to 500 mg first (vocabulary v2, "Escalation and alternatives").
    alternatives = {"anakinra", "ruxolitinib", "cyclophosphamide", "cytokine_adsorption", "methylprednisolone_pulse"}
    r = recs(rules, heavy_grade3(130, (260, 30), (260, 18)))
    assert "methylprednisolone" in r and not alternatives & r
    # 1 mg/kg (for ICANS) at 260 kg, 260 mg: not high-dose either
    r = recs(rules, heavy_grade3(260, (260, 30)))
    assert "methylprednisolone" in r and not alternatives & r
    # just above 2 mg/kg (130 kg, 261 mg) and the 500 mg regimen: high-dose, failed after 24 h
    assert alternatives <= recs(rules, heavy_grade3(130, (261, 30)))
    assert alternatives <= recs(rules, heavy_grade3(130, (500, 30)))
    # the guideline's 500 mg is high-dose at any weight (1.25 mg/kg at 400 kg)
    assert alternatives <= recs(rules, heavy_grade3(400, (500, 30)))
    # with no weight, 250 mg (the first taper step) is taken as high-dose
    no_weight = heavy_grade3(70, (250, 30)).replace("weight_kg(x, 70).\n", "")
    assert alternatives <= recs(rules, no_weight)


def test_pulse_only_after_methylprednisolone_fails(rules):
    base = GRADE3 + "given(x, tocilizumab, 560, 60).\ngiven(x, dexamethasone, 10, 60).\n"
    r = recs(rules, base + "given(x, methylprednisolone, 500, 20).\n")
    assert "methylprednisolone" in r and "methylprednisolone_pulse" not in r
    r = recs(rules, base + "given(x, methylprednisolone, 500, 24).\n")
    assert "methylprednisolone_pulse" in r and "methylprednisolone" not in r


def test_no_improvement_setting(rules):
    text = GRADE3 + "given(x, tocilizumab, 560, 14).\n"
    assert "methylprednisolone" not in recs(rules, text)
    assert "methylprednisolone" in recs(rules, text, settings={"no_improvement_hours": 12})


def test_tocilizumab_before_onset_does_not_start_clock(rules):
    # prophylactic tocilizumab before CRS onset is not "no improvement after tocilizumab"
    text = "weight_kg(x, 70).\ntemperature_c(x, 38.5).\ncrs_onset(x, 20).\noxygen(x, facemask, 6).\n" \
        "given(x, tocilizumab, 560, 50).\n"
    assert "methylprednisolone" not in recs(rules, text)


# ---------------------------------------------------------------------------
# Supportive care, monitoring, ICU
# ---------------------------------------------------------------------------
def test_oxygen_for_low_saturation(rules):
    assert "supplemental_oxygen" in recs(rules, "spo2(x, 92).\n")  # G: keep SpO2 > 92%
    assert "supplemental_oxygen" not in recs(rules, "spo2(x, 93).\n")


def test_icu_transfer(rules):
    distress = GRADE3 + "respiratory_distress(x).\n"
    assert "icu_transfer" in recs(rules, distress)
    assert "icu_transfer" not in recs(rules, distress + "in_icu(x).\n")
    # vocabulary v2 (ASCO 2021, NCCN): every CRS grade >= 3 and every ICANS grade >= 3
    assert "icu_transfer" in recs(rules, GRADE3)  # grade 3 on high-flow oxygen, no distress
    assert "icu_transfer" in recs(rules, "temperature_c(x, 38.5).\noxygen(x, cpap, 10).\n")  # grade 4
    assert "icu_transfer" in recs(rules, "temperature_c(x, 38.5).\nvasopressor(x, norepinephrine).\n")  # grade 3
    assert "icu_transfer" in recs(rules, "temperature_c(x, 37.0).\nicans_grade(x, 3).\n")  # isolated ICANS 3
    assert "icu_transfer" not in recs(rules, "temperature_c(x, 37.0).\nicans_grade(x, 2).\n")
    assert "icu_transfer" not in recs(rules, GRADE2_NOT_IMPROVING)  # grade 2
    assert "icu_transfer" not in recs(rules, "temperature_c(x, 37.0).\nicans_grade(x, 4).\nin_icu(x).\n")


def test_echo_only_when_not_done(rules):
    assert "echocardiogram" in recs(rules, GRADE3)
    assert "echocardiogram" not in recs(rules, GRADE3 + "echo_done(x).\n")
    assert "echocardiogram" not in recs(rules, GRADE2_NOT_IMPROVING)


def test_vasopressors_only_after_fluids(rules):
    base = "temperature_c(x, 38.5).\nhypotension(x).\n"
    r = recs(rules, base)
    assert "iv_fluids" in r and "vasopressors" not in r
    r = recs(rules, base + "fluid_resuscitation(x).\n")
    assert "iv_fluids" not in r and "vasopressors" in r


def test_antifungal_prophylaxis_with_steroids(rules):
    text = "temperature_c(x, 38.5).\noxygen(x, nasal_cannula, 3).\n"
    model = run(rules, text=text)
    assert ("antifungal_prophylaxis",) in of(model, "recommend", "x")
    assert ("steroids_without_antifungal",) in of(model, "warning", "x")
    model = run(rules, text=text + "antifungal(x).\n")
    assert ("antifungal_prophylaxis",) not in of(model, "recommend", "x")
    assert of(model, "warning", "x") == {("no_weight_for_dose",)}


def test_tocilizumab_given_for_isolated_icans(rules):
    model = run(rules, text="temperature_c(x, 37.0).\nicans_grade(x, 1).\ngiven(x, tocilizumab, 560, 3).\n")
    assert ("tocilizumab_for_icans",) in of(model, "warning", "x")
    assert of(model, "contraindicated", "x") == {("tocilizumab", "isolated_icans"), ("tocilizumab", "too_soon")}


def test_withheld_for_other_reason_is_no_warning(rules):
    text = "temperature_c(x, 38.5).\noxygen(x, nasal_cannula, 3).\nantifungal(x).\nweight_kg(x, 70).\n"
    model = run(rules, text=text + "withheld(x, tocilizumab, patient_declined).\n")
    assert of(model, "warning", "x") == set()
    model = run(rules, text=text + "withheld(x, tocilizumab, car_t_efficacy_concern).\n")
    assert of(model, "warning", "x") == {("withheld_for_car_t_efficacy",)}


def test_recommend_is_indicated_minus_contraindicated(rules):
    model = run(rules, files=sorted(EXAMPLES) + ["cohort.facts"])
    indicated = model.tuples("indicated")
    contra = {(p, a) for (p, a, _) in model.tuples("contraindicated")}
    assert model.tuples("recommend") == {t for t in indicated if t not in contra}
    conflicts = {(p, a) for (p, a, _) in model.tuples("conflict")}
    assert {t for t in indicated if t in contra} <= conflicts


# ---------------------------------------------------------------------------
# Traceability: every statement of the guideline text has a row in
# rules/crs/README.md, and every rule id named there exists.
# ---------------------------------------------------------------------------
def _norm(text: str) -> str:
    import re
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def test_every_guideline_statement_has_a_traceability_row() -> None:
    guideline = (ROOT / "rules" / "crs" / "guideline.txt").read_text(encoding="utf-8").splitlines()
    table = _norm((ROOT / "rules" / "crs" / "README.md").read_text(encoding="utf-8"))
    statements = [guideline[1]] + [line[2:] for line in guideline if line.startswith("- ")]
    assert len(statements) == 26
    missing = [s for s in statements if " ".join(_norm(s).split()[:7]) not in table]
    assert missing == []


def test_every_rule_id_in_the_traceability_table_exists_and_every_rule_is_traced() -> None:
    import fnmatch
    import re
    readme = (ROOT / "rules" / "crs" / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Traceability")
    rows = [line for line in readme[start:].splitlines() if line.startswith("| ")]
    named = set(re.findall(r"`([a-z_0-9]+(?:\.[a-z_0-9*]+)+|recommend)`", "\n".join(rows)))
    ids = {r.id for r in load_rules(RULES_DIR).rules if r.id}
    unknown = [n for n in named if not fnmatch.filter(ids, n)]
    assert unknown == []
    untraced = [i for i in ids if not any(fnmatch.fnmatch(i, n) for n in named)]
    assert untraced == [], "rules missing from the traceability table"


# ---------------------------------------------------------------------------
# Vocabulary v2 (issue 14): one test per defect of the clinical review, each on its
# example patient in rules/crs/tests/v2_*.facts, with the whole answer that matters
# ---------------------------------------------------------------------------
CASES_DIR = RULES_DIR / "tests"


def case_model(rules, name):
    facts = load_facts(rules, [str(CASES_DIR / name)])
    model = evaluate(rules, facts)
    assert not list(model.violations), model.violations
    return model


def recommended(model, pid):
    return {a for (a,) in of(model, "recommend", pid)}


def test_v2_methylprednisolone_history_never_escalates(rules):
    # vocabulary v2 "Escalation": a taper step or 1 mg/kg for ICANS never re-escalates to 500 mg
    model = case_model(rules, "v2_taper_step_no_reescalation.facts")
    assert grade(model, "crs_grade", "t1") == 0  # ASTCT: masked, room air, normal pressure
    assert not {"methylprednisolone", "methylprednisolone_pulse", "dexamethasone", "tocilizumab"} & recommended(model, "t1")
    t2 = recommended(model, "t2")
    assert grade(model, "crs_grade", "t2") == 0 and "methylprednisolone" not in t2
    # G: "steroids are the mainstay of ICANS treatment"; ASCO/NCCN: ICU for ICANS >= 3
    assert {"dexamethasone", "icu_transfer"} <= t2
    assert of(model, "dose_mg", "t2") == {("dexamethasone", 10)}


def test_v2_escalation_by_state_at_exactly_24_hours(rules):
    # G: "For Grade 3-4 CRS with no improvement after tocilizumab, escalate to high-dose
    # methylprednisolone: 500 mg IV every 12 hours"; "If No Improvement Within 24 Hours"
    model = case_model(rules, "v2_escalation_by_state.facts")
    e24, e23 = recommended(model, "e24"), recommended(model, "e23")
    assert {"methylprednisolone", "tocilizumab"} <= e24 and "dexamethasone" not in e24
    assert ("methylprednisolone", 500) in of(model, "dose_mg", "e24")
    # vocabulary v2: alternatives only after tocilizumab AND high-dose methylprednisolone failed
    assert not {"anakinra", "siltuximab", "ruxolitinib", "cyclophosphamide", "cytokine_adsorption",
                "methylprednisolone_pulse"} & e24
    assert "dexamethasone" in e23 and "methylprednisolone" not in e23  # 23 h: not yet


def test_v2_resolved_crs_leaves_isolated_icans(rules):
    # vocabulary v2: masked fever grades by hypoxia/hypotension only, so resolved CRS is 0;
    # G: "tocilizumab may not be effective for ICANS and could potentially contribute to it"
    model = case_model(rules, "v2_resolved_crs_then_icans.facts")
    assert grade(model, "crs_grade", "r1") == 0 and of(model, "fever_masked", "r1") == {()}
    assert of(model, "conflict", "r1") == {("tocilizumab", "isolated_icans")}
    assert ("tocilizumab_for_icans",) in of(model, "warning", "r1")
    assert {"dexamethasone", "icu_transfer"} <= recommended(model, "r1")
    assert "tocilizumab" not in recommended(model, "r1")


def test_v2_refractory_options_and_no_dual_il6_blockade(rules):
    # G: "For severe refractory cases, consider methylprednisolone 1,000 mg IV twice daily or
    # alternative therapy"; vocabulary v2: siltuximab not while tocilizumab is recommended
    model = case_model(rules, "v2_refractory_choice.facts")
    f1 = recommended(model, "f1")
    assert {"methylprednisolone_pulse", "anakinra", "ruxolitinib", "cyclophosphamide", "cytokine_adsorption",
            "tocilizumab"} <= f1
    assert not {"siltuximab", "methylprednisolone", "dexamethasone"} & f1
    # all 4 tocilizumab doses used: siltuximab is the IL-6 option (11 mg/kg, CARTOX)
    assert "siltuximab" in recommended(model, "f2") and "tocilizumab" not in recommended(model, "f2")
    assert ("siltuximab", 770) in of(model, "dose_mg", "f2")


def test_v2_missing_inputs_are_warned(rules):
    model = case_model(rules, "v2_missing_inputs.facts")
    assert ("missing_temperature",) in of(model, "warning", "m1")
    assert grade(model, "crs_grade", "m1") == 0  # understated, which is why the warning exists
    assert ("missing_crs_onset",) in of(model, "warning", "m2")
    assert ("no_weight_for_dose",) in of(model, "warning", "m3") and not of(model, "dose_mg", "m3") - {
        ("dexamethasone", 10)}
    assert not {("missing_temperature",), ("missing_crs_onset",)} & of(model, "warning", "m4")


def test_v2_icu_for_crs_or_icans_grade_3(rules):
    model = case_model(rules, "v2_icu_transfer.facts")
    assert [("icu_transfer" in recommended(model, p)) for p in ("i1", "i2", "i3", "i4", "i5")] == \
        [True, True, True, False, False]


def test_v2_low_weight_adult_doses_are_flagged(rules):
    model = case_model(rules, "v2_low_weight.facts")
    w = {p: {c for (c,) in of(model, "warning", p)} for p in ("w1", "w2", "w3", "w4")}
    assert "fixed_adult_dose_methylprednisolone" in w["w1"] and ("tocilizumab", 160) in of(model, "dose_mg", "w1")
    assert {"fixed_adult_dose_anakinra", "fixed_adult_dose_methylprednisolone_pulse"} <= w["w2"]
    assert not any(c.startswith("fixed_adult_dose") for c in w["w3"])  # exactly 40 kg: not under 40
    assert "fixed_adult_dose_dexamethasone" in w["w4"]
    settings_model = evaluate(rules, load_facts(rules, [str(CASES_DIR / "v2_low_weight.facts")]),
                              settings={"adult_dose_min_weight_kg": 41})
    assert ("fixed_adult_dose_dexamethasone",) in of(settings_model, "warning", "w3")


REVIEW_CASES = sorted((ROOT / "tests" / "data").glob("crs_review*/*.facts"))


@pytest.mark.parametrize("path", REVIEW_CASES, ids=[p.name for p in REVIEW_CASES])
def test_independent_review_case(rules, path):
    """The independent reviewers' patients (expected answers written before any run),
    with the rule set's integrity constraints holding for each."""
    from reasoner.authoring.casetests import read_case, run_case
    outcome = run_case(read_case(path, rules), rules)
    assert outcome.failures == []
    run(rules, files=[str(path)])  # asserts no constraint is violated


def test_v2_methylprednisolone_allergy_keeps_dexamethasone(rules):
    # second review, q04: grade 4, tocilizumab failed, allergic to methylprednisolone: the
    # escalation shows as a conflict and dexamethasone stays (never no steroid at all)
    text = GRADE3.replace("high_flow_nasal_cannula, 30", "bipap, 10") + \
        "given(x, tocilizumab, 560, 30).\nallergy(x, methylprednisolone).\n"
    model = run(rules, text=text)
    assert "dexamethasone" in {a for (a,) in of(model, "recommend", "x")}
    assert ("methylprednisolone", "allergy") in of(model, "conflict", "x")
