"""The feedback database (sqlite3, one file) and the override report.

The service records every card it issues that comes from rules (its uuid, service,
hook, hookInstance, patient, indicator, summary and rule ids), and every feedback item a
client posts (`POST /cds-services/{id}/feedback`, CDS Hooks 2.0 "Feedback": card uuid,
outcome `accepted` or `overridden`, accepted suggestion ids, override reason and the
user's comment, outcome timestamp). A feedback request is recorded whole or not at all:
a card this service never issued, or an item that is not valid, refuses the request
(400, E055).

`overrides` reports, per rule id: the cards shown that cite it, how many of them were
accepted and overridden (a card's *latest* outcome by its outcomeTimestamp counts, so a
card overridden and later accepted counts as accepted), the override rate (overridden /
(accepted + overridden)), and the most frequent override reasons. Rows are sorted by
overridden count, then rate, then rule id: the same database gives the same bytes.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from reasoner.service.outcome import BAD_FEEDBACK, FEEDBACK_DB, Issue, ServiceError

SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
  uuid TEXT PRIMARY KEY, service TEXT NOT NULL, hook TEXT NOT NULL, hook_instance TEXT NOT NULL,
  patient TEXT NOT NULL, indicator TEXT NOT NULL, summary TEXT NOT NULL, issued_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS card_rules (uuid TEXT NOT NULL, rule TEXT NOT NULL, PRIMARY KEY (uuid, rule));
CREATE TABLE IF NOT EXISTS feedback (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, card TEXT NOT NULL, service TEXT NOT NULL, outcome TEXT NOT NULL,
  accepted_suggestions TEXT, reason_system TEXT, reason_code TEXT, reason_display TEXT, user_comment TEXT,
  outcome_timestamp TEXT NOT NULL, received_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('format', 'guideline-reasoner feedback 1');
"""
TOP_REASONS = 3
NO_REASON = "(no reason given)"


class FeedbackStore:
    """The database at `path` (":memory:" for one that lives as long as the service);
    safe to use from several threads (one connection, one lock)."""

    def __init__(self, path: str, create: bool = True):
        """`create`: make the tables in a new, empty database (`serve`); without it, or in a
        database that holds other tables, nothing is written (`overrides` only reads, and
        another program's database is never changed)."""
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            found = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() \
                if "meta" in tables else None
            if found is None and (tables or not create):
                self._db.close()
                raise ServiceError.one(500, FEEDBACK_DB, f"{path}: not a feedback database of reasoner serve"
                                       + (" (it holds other tables; nothing was written to it)" if tables else ""))
            self._db.execute("PRAGMA journal_mode=WAL" if path != ":memory:" else "PRAGMA journal_mode=MEMORY")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.Error as exc:
            raise ServiceError.one(500, FEEDBACK_DB, f"{path}: cannot open the feedback database: {exc}") from None
        if found is None or found[0] != "guideline-reasoner feedback 1":
            raise ServiceError.one(500, FEEDBACK_DB, f"{path}: not a feedback database of reasoner serve")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record_cards(self, service: str, hook: str, hook_instance: str, patient: str, cards: list[dict[str, Any]],
                     issued_at: str, rules_key: str) -> None:
        """The cards of one response that name rules (a card with no rule is not tracked)."""
        rows, links = [], []
        for card in cards:
            rule_ids = (card.get("extension") or {}).get(rules_key) or []
            if not rule_ids:
                continue
            rows.append((card["uuid"], service, hook, hook_instance, patient, card["indicator"], card["summary"],
                         issued_at))
            links += [(card["uuid"], rule) for rule in rule_ids]
        if not rows:
            return
        with self._lock, self._writing():
            self._db.executemany("INSERT OR IGNORE INTO cards VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.executemany("INSERT OR IGNORE INTO card_rules VALUES (?, ?)", links)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction; a database that cannot be written is E056 (500), not a traceback."""
        try:
            self._db.execute("BEGIN")
            yield
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise ServiceError.one(500, FEEDBACK_DB, f"{self.path}: cannot write the feedback database: {exc}") \
                from None

    def record_feedback(self, service: str, doc: Any, received_at: str) -> int:
        """A feedback request's items, checked and recorded together; the number recorded."""
        items = _check_feedback(doc)
        with self._lock:
            wanted = sorted({i["card"] for i in items})
            cards: dict[str, str] = {}
            for k in range(0, len(wanted), 500):  # sqlite's limit on parameters
                part = wanted[k:k + 500]
                cards.update(self._db.execute(f"SELECT uuid, service FROM cards WHERE uuid IN "
                                              f"({','.join('?' * len(part))})", part).fetchall())
            issues = [Issue(BAD_FEEDBACK, f"card {i['card']!r} was not issued by service {service}",
                            (f"feedback[{n}].card",)) for n, i in enumerate(items) if cards.get(i["card"]) != service]
            if issues:
                raise ServiceError(400, issues)
            with self._writing():
                self._insert(service, items, received_at)
        return len(items)

    def _insert(self, service: str, items: list[dict[str, Any]], received_at: str) -> None:
        for item in items:
            reason = item.get("overrideReason") or {}
            coding = reason.get("reason") or {}
            self._db.execute(
                "INSERT INTO feedback (card, service, outcome, accepted_suggestions, reason_system, reason_code, "
                "reason_display, user_comment, outcome_timestamp, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (item["card"], service, item["outcome"],
                 json.dumps([s["id"] for s in item.get("acceptedSuggestions") or []]),
                 coding.get("system"), coding.get("code"), coding.get("display"), reason.get("userComment"),
                 _utc(item["outcomeTimestamp"]), received_at))

    def overrides(self) -> list["RuleOverrides"]:
        """The per-rule report, sorted (see the module docstring)."""
        with self._lock:
            latest = """WITH ranked AS (SELECT f.*, row_number() OVER (PARTITION BY card
                          ORDER BY outcome_timestamp DESC, seq DESC) AS rn FROM feedback f),
                        latest AS (SELECT * FROM ranked WHERE rn = 1)"""
            counts = self._db.execute(latest + """
                SELECT r.rule, count(DISTINCT r.uuid),
                       count(DISTINCT CASE WHEN l.outcome = 'accepted' THEN r.uuid END),
                       count(DISTINCT CASE WHEN l.outcome = 'overridden' THEN r.uuid END)
                FROM card_rules r LEFT JOIN latest l ON l.card = r.uuid GROUP BY r.rule""").fetchall()
            reasons = self._db.execute(latest + """
                SELECT r.rule, coalesce(l.reason_display, l.reason_code, ?) AS why, count(*)
                FROM card_rules r JOIN latest l ON l.card = r.uuid WHERE l.outcome = 'overridden'
                GROUP BY r.rule, why""", (NO_REASON,)).fetchall()
        by_rule: dict[str, list[tuple[str, int]]] = {}
        for rule, why, n in reasons:
            by_rule.setdefault(rule, []).append((why, n))
        out = []
        for rule, shown, accepted, overridden in counts:
            acted = accepted + overridden
            top = sorted(by_rule.get(rule, []), key=lambda r: (-r[1], r[0]))[:TOP_REASONS]
            out.append(RuleOverrides(rule, shown, accepted, overridden, overridden / acted if acted else None, top))
        return sorted(out, key=lambda r: (-r.overridden, -(r.rate or 0.0), r.rule))


@dataclass(frozen=True)
class RuleOverrides:
    """One rule's row of the override report."""

    rule: str
    shown: int
    accepted: int
    overridden: int
    rate: float | None
    reasons: list[tuple[str, int]]

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "cards_shown": self.shown, "accepted": self.accepted,
                "overridden": self.overridden, "override_rate": None if self.rate is None else round(self.rate, 4),
                "top_override_reasons": [{"reason": r, "count": n} for r, n in self.reasons]}


def open_existing(path: str) -> FeedbackStore:
    """The feedback database at `path`, which must exist (`reasoner overrides` creates nothing)."""
    if not Path(path).is_file():
        raise ServiceError.one(500, FEEDBACK_DB, f"{path}: no such feedback database (start `reasoner serve "
                               "--feedback-db PATH` to create one)")
    return FeedbackStore(path, create=False)


def render(rows: list[RuleOverrides], fmt: str) -> str:
    """The override report as text, JSON or CSV."""
    if fmt == "json":
        return json.dumps({"rules": [r.as_json() for r in rows]}, ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["rule", "cards_shown", "accepted", "overridden", "override_rate", "top_override_reasons"])
        for r in rows:
            writer.writerow([r.rule, r.shown, r.accepted, r.overridden, "" if r.rate is None else f"{r.rate:.4f}",
                             "; ".join(f"{why} ({n})" for why, n in r.reasons)])
        return buffer.getvalue()
    if not rows:
        return "no cards recorded\n"
    lines = [f"{'rule':<44} {'shown':>5} {'accepted':>8} {'overridden':>10} {'rate':>6}  top override reasons"]
    for r in rows:
        rate = "-" if r.rate is None else f"{100 * r.rate:.0f}%"
        why = "; ".join(f"{w} ({n})" for w, n in r.reasons)
        lines.append(f"{r.rule:<44} {r.shown:>5} {r.accepted:>8} {r.overridden:>10} {rate:>6}  {why}".rstrip())
    return "\n".join(lines) + "\n"


def _check_feedback(doc: Any) -> list[dict[str, Any]]:
    """The feedback items of a request, each checked against the specification."""
    if not isinstance(doc, dict) or not isinstance(doc.get("feedback"), list):
        raise ServiceError.one(400, BAD_FEEDBACK, "a feedback request is an object with a `feedback` array",
                               "feedback")
    issues: list[Issue] = []
    for n, item in enumerate(doc["feedback"]):
        where = f"feedback[{n}]"
        if not isinstance(item, dict):
            issues.append(Issue(BAD_FEEDBACK, f"{where} must be an object", (where,)))
            continue
        if not isinstance(item.get("card"), str) or not item["card"]:
            issues.append(Issue(BAD_FEEDBACK, f"{where}.card (the card's uuid) is required", (f"{where}.card",)))
        if item.get("outcome") not in ("accepted", "overridden"):
            issues.append(Issue(BAD_FEEDBACK, f"{where}.outcome must be accepted or overridden",
                                (f"{where}.outcome",)))
        accepted = item.get("acceptedSuggestions")
        if item.get("outcome") == "accepted" and not (
                isinstance(accepted, list) and accepted
                and all(isinstance(s, dict) and isinstance(s.get("id"), str) for s in accepted)):
            issues.append(Issue(BAD_FEEDBACK, f"{where}.acceptedSuggestions (objects with an id) is required for an "
                                "accepted outcome", (f"{where}.acceptedSuggestions",)))
        reason = item.get("overrideReason")
        coding = reason.get("reason", {}) if isinstance(reason, dict) else None
        if reason is not None and not (isinstance(coding, dict) and isinstance(reason.get("userComment", ""), str)
                                       and all(isinstance(coding.get(k, ""), str)
                                               for k in ("system", "code", "display"))):
            issues.append(Issue(BAD_FEEDBACK, f"{where}.overrideReason must be an object with a reason Coding and "
                                "an optional userComment", (f"{where}.overrideReason",)))
        stamp = item.get("outcomeTimestamp")
        if not isinstance(stamp, str) or not _is_timestamp(stamp):
            issues.append(Issue(BAD_FEEDBACK, f"{where}.outcomeTimestamp must be an ISO 8601 date-time",
                                (f"{where}.outcomeTimestamp",)))
    if issues:
        raise ServiceError(400, issues)
    return doc["feedback"]


def _is_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _utc(text: str) -> str:
    """An outcome timestamp in UTC, in one form, so that text order is time order (the
    specification says UTC; one without an offset is taken as UTC)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
