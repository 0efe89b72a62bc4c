"""Synthetic CAR T patients in the CRS vocabulary (shared/guideline/vocabulary.md).

    python bench/generate.py 200 --seed 1 > facts/cohort.facts

`generate_patients(n, seed)` returns fact text for `n` patients, deterministic for a
seed. The distributions are rough but realistic for the first two weeks after CD19 or
BCMA CAR T cells: about 80% of patients develop CRS, mostly grade 1-2, about 10-13%
grade 3-4; ICANS in about a third; treatment histories (tocilizumab at most every 8 h,
dexamethasone every 6 h, methylprednisolone every 12 h) follow the grade and the time
since CRS onset. The data are invented; no real patient is described.
"""
from __future__ import annotations

import argparse
import random

VASOPRESSORS = ["norepinephrine", "epinephrine", "phenylephrine", "dopamine"]


def _fmt(x: float) -> str:
    """A number as the fact language writes it (no exponent, at most one decimal)."""
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.1f}"


def _weighted(rng: random.Random, choices: list[tuple[object, float]]):
    total = sum(w for _, w in choices)
    r = rng.uniform(0, total)
    upto = 0.0
    for value, w in choices:
        upto += w
        if r <= upto:
            return value
    return choices[-1][0]


def _patient(rng: random.Random, pid: str) -> list[str]:
    facts: list[str] = []

    def f(pred: str, *args: object) -> None:
        parts = [pid] + [_fmt(a) if isinstance(a, (int, float)) else str(a) for a in args]
        facts.append(f"{pred}({', '.join(parts)}).")

    child = rng.random() < 0.08
    if child:
        weight = round(rng.uniform(14, 60), 1)
    else:
        weight = round(min(160, max(40, rng.gauss(78, 16))), 1)
    f("weight_kg", weight)

    # Target CRS grade for the scenario (0 = no CRS).
    grade = _weighted(rng, [(0, 20), (1, 40), (2, 27), (3, 9), (4, 4)])
    onset = None
    if grade >= 1:
        onset = rng.randint(2, 120)
        f("crs_onset", onset)

    # Treatment history since onset.
    toci_times: list[int] = []
    dex_times: list[int] = []
    mp_times: list[int] = []
    if onset is not None and (grade >= 2 or (grade == 1 and onset > 48 and rng.random() < 0.3)):
        first = rng.randint(0, max(0, onset - 1))
        n_doses = rng.choice([1, 1, 1, 2, 2, 3, 4]) if grade >= 2 else 1
        t = first
        for _ in range(n_doses):
            if t < 0:
                break
            toci_times.append(t)
            t -= rng.randint(8, 16)
        if grade >= 2 and rng.random() < 0.75:
            start = rng.randint(0, max(0, onset - 1))
            t = start
            while t >= 0 and len(dex_times) < 12:
                dex_times.append(t)
                t -= 6
        if grade >= 3 and toci_times and max(toci_times) >= 24 and rng.random() < 0.5:
            start = rng.randint(0, max(0, max(toci_times) - 24))
            t = start
            while t >= 0 and len(mp_times) < 6:
                mp_times.append(t)
                t -= 12
    if rng.random() < 0.03:  # prophylactic dexamethasone with the infusion
        f("given", "dexamethasone", 10, (onset or 0) + rng.randint(6, 48))
    if rng.random() < 0.15 and onset is not None:
        f("given", "antipyretic", 1000, rng.randint(0, onset))
    toci_dose = min(8 * weight, 800)
    for t in toci_times:
        f("given", "tocilizumab", round(toci_dose), t)
    for t in dex_times:
        f("given", "dexamethasone", 10, t)
    for t in mp_times:
        f("given", "methylprednisolone", 500, t)
    treated = bool(toci_times or dex_times or mp_times)

    # Temperature: febrile unless masked by treatment or no CRS.
    if grade == 0:
        temp = round(rng.uniform(36.2, 37.9), 1)
    elif treated and rng.random() < 0.45:
        temp = round(rng.uniform(36.5, 37.9), 1)  # masked fever
    else:
        temp = round(rng.uniform(38.0, 40.2), 1)
    f("temperature_c", temp)

    # Oxygen and hemodynamics consistent with the grade.
    hyp_grade = 0
    oxy_grade = 0
    if grade >= 2:
        which = rng.choice(["oxygen", "hypotension", "both"])
        top = grade
        if which in ("oxygen", "both"):
            oxy_grade = top if which == "oxygen" or rng.random() < 0.5 else rng.randint(2, top)
        if which in ("hypotension", "both"):
            hyp_grade = top if which == "hypotension" or oxy_grade < top else rng.randint(2, top)
    if oxy_grade == 0:
        if rng.random() < 0.5:
            f("oxygen", "room_air", 0)
        spo2 = rng.randint(93, 100)
    elif oxy_grade == 2:
        if child and rng.random() < 0.3:
            f("oxygen", "blow_by", rng.choice([2, 4]))
        else:
            f("oxygen", "nasal_cannula", rng.choice([1, 2, 2, 3, 4, 5, 6]))
        spo2 = rng.randint(90, 97)
    elif oxy_grade == 3:
        device = rng.choice(["high_flow_nasal_cannula", "facemask", "nonrebreather",
                             "venturi_mask", "nasal_cannula"])
        lpm = {"high_flow_nasal_cannula": rng.choice([20, 30, 40, 50, 60]),
               "facemask": rng.choice([5, 6, 8, 10]), "nonrebreather": rng.choice([10, 12, 15]),
               "venturi_mask": rng.choice([6, 8, 10, 12]), "nasal_cannula": rng.choice([6.5, 7, 8])}[device]
        f("oxygen", device, lpm)
        spo2 = rng.randint(86, 95)
    else:
        f("oxygen", rng.choice(["cpap", "bipap", "mechanical_ventilation"]), rng.choice([10, 12, 15]))
        spo2 = rng.randint(82, 94)
    f("spo2", spo2)
    if oxy_grade >= 3 and rng.random() < 0.5:
        f("respiratory_distress")

    if hyp_grade >= 2 or (grade == 0 and rng.random() < 0.04):
        f("hypotension")
        if rng.random() < 0.7 or hyp_grade >= 3:
            f("fluid_resuscitation")
    if hyp_grade == 3:
        f("vasopressor", rng.choice(VASOPRESSORS[:2]))
        if rng.random() < 0.3:
            f("vasopressor", "vasopressin")
    elif hyp_grade == 4:
        for drug in rng.sample(VASOPRESSORS, 2):
            f("vasopressor", drug)
        if rng.random() < 0.5:
            f("vasopressor", "vasopressin")

    # Context.
    if grade >= 1 and rng.random() < 0.85 or rng.random() < 0.3:
        f("antibiotics")
    if rng.random() < 0.6:
        f("antifungal")
    if rng.random() < 0.015:
        f("allergy", "tocilizumab")
    icans = _weighted(rng, [(0, 68), (1, 10), (2, 11), (3, 8), (4, 3)])
    f("icans_grade", icans)
    if treated and rng.random() < 0.4:
        f("improving")
    if (grade >= 3 or icans >= 3) and rng.random() < 0.7:
        f("in_icu")
    if grade >= 3 and rng.random() < 0.4:
        f("echo_done")
    if grade >= 2 and rng.random() < 0.2:
        f("organ_dysfunction", rng.choice(["cardiac", "hepatic", "renal", "pulmonary"]))
    if icans >= 1 and grade == 0 and rng.random() < 0.2:
        f("ordered", "tocilizumab")
    if grade >= 2 and not toci_times and rng.random() < 0.1:
        f("withheld", "tocilizumab", "car_t_efficacy_concern")
    return facts


def generate_patients(n: int, seed: int = 0, prefix: str = "c") -> str:
    """Fact text for `n` synthetic patients (ids c0001..., or with another prefix), the
    same for the same seed."""
    rng = random.Random(seed)
    width = max(4, len(str(n)))
    lines = [f"% {n} synthetic CAR T patients, bench/generate.py seed {seed}; invented data", ""]
    for i in range(1, n + 1):
        pid = f"{prefix}{i:0{width}d}"
        lines.extend(_patient(rng, pid))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="number of patients")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    args = ap.parse_args()
    text = generate_patients(args.n, args.seed)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
