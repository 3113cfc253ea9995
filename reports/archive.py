"""The consolidation group's sign-off: a monitoring period frozen into an archive that never changes.

``approve`` builds the whole province's report of a closed period as of the approval day, writes
``report.xlsx``, ``report.html`` and ``figures.json`` (every figure of the report under a stable
key) with a ``manifest.json`` of their SHA-256 digests into ``<data_dir>/archive/<year>-Q<q>/``,
and records who approved it, when, and the manifest's digest in the store (store/reviews.py) in
the same transaction. Approval is the cycle's group-review step, so the archived report shows it
done. The files are written to a temporary folder and renamed into place; the folder of an
approved period is never written again, and its files are made read-only.

A kill. The store's committed sign-off is what approves a period; a folder is an archive only with
it. The sign-off's row is inserted first, as the period's claim (a concurrent approval waits on it,
then fails on the unique key; it gives up, recording nothing, when the claim is held past its wait:
store/reviews.py), the folder written and renamed into place, and the transaction
committed last: a sign-off in the store therefore always has its folder (``review list`` never
says MISSING after a kill), and a kill before the commit leaves at most a folder, or a temporary
``.1405-Q2.partial-<pid>``, that the store does not record. ``review list`` shows that period open
and ``review diff`` not approved (they read the store). The next approval of the period, holding
the claim, removes the temporary folders and sets such a folder aside as
``.1405-Q2.unrecorded-<its moment>`` (not removed: if the database was restored from a backup older
than the folder, it is the only record of a real approval), says so in one warning line, and
approves anew. It sets aside only a folder whose manifest names the period and that holds nothing
else than the manifest's files; anything else there is refused, as before. The other order (commit
first, then place the folder) was not taken: a kill between would leave an approved period whose
archive is missing, and ``review list``/``diff`` would have to write the archive to heal it.

The archive is byte-stable: the report is built from the stored as-of day and approval moment, the
workbook's creation date is that moment, and nothing else varies, so making it again from the same
store gives the same bytes. ``diff`` first checks the archive as ``review list`` does (``intact``)
and refuses one altered or missing; then it makes the report again, with the sign-offs its approval
saw, without touching the archive, and lists the figures the store now holds differently (a late
correction on a portal): each compared exactly, by its key in ``figures.json``, and named and shown
for the consolidation group as the report shows it (see "how review diff names and shows a figure"
below). ``figures.json`` says its ``edition`` (``EDITION``): an archive approved before some of the
report's figures were kept in it is compared on those it holds, and the diff says once which it
lacks (``compare``), rather than listing each as a change of the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from foundation import present
from foundation.jalali import TEHRAN, format_jalali, is_quarter_closed, quarter_end, terminal_day
from foundation.vocabulary import SEVERITIES
from reconcile.settings import RoutingConfig, RulesConfig
from reports import excel, html, precision
from reports.cycle import Step
from reports.model import Limits, Report, Selection, build
from store import reporting, reviews
from store.reviews import Signoff

MANIFEST = "manifest.json"
FIGURES = "figures.json"

log = logging.getLogger("budgetwatch.reports")


class ReviewError(Exception):
    """A sign-off step cannot be taken; ``exit_code`` 3 for a period in the wrong state."""

    def __init__(self, message: str, exit_code: int = 3) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Settings:
    """What a period's report depends on besides the store (from config.yaml)."""

    data_dir: Path
    routing: RoutingConfig
    report_due_days: int = 15
    service_days: int = 10
    rules: RulesConfig | None = None  # the thresholds figures near one are shown apart from (None: the catalogue's)


@dataclass(frozen=True)
class Period:
    fiscal_year: int
    quarter: int
    state: str  # approved | open (closed, awaiting sign-off) | not_closed
    signoff: Signoff | None = None
    intact: bool | None = None  # approved: does the archive still match the digest in the store?


@dataclass(frozen=True)
class Change:
    """A figure of the archive that the store now holds differently. ``key``, ``archived`` and
    ``now`` are figures.json's, exact; the rest is how a person reads it (``_describe``)."""

    key: str
    archived: str | None  # None: empty, or no such figure (``archived_text`` says which)
    now: str | None
    subject: str = ""  # what the figure belongs to: "project P-1, Q2", "agency 305 <its name>"
    figure: str = ""  # which figure, with its unit where the value does not carry it
    archived_text: str = ""  # as the report shows it, in the terminal's digits
    now_text: str = ""
    finer: bool = False  # the report's places show both alike: shown with the places it takes


def root(data_dir: Path) -> Path:
    """The folder of every period's archive: written by the sign-off alone (no report --output)."""
    return Path(data_dir) / "archive"


def folder(data_dir: Path, fiscal_year: int, quarter: int) -> Path:
    return root(data_dir) / f"{fiscal_year}-Q{quarter}"


def not_closed(fiscal_year: int, quarter: int, as_of: date) -> str:
    """Why a period cannot be reported or approved yet, as `report` and `review approve` both say it:
    '1405 Q3 is not closed on 1405/09/17 (2026-12-08): it ends on 1405/09/30 (2026-12-21) and can be
    reported from 1405/10/01 (2026-12-22)' (closed the day after its last day)."""
    end = quarter_end(fiscal_year, quarter)
    return (f"{fiscal_year} Q{quarter} is not closed on {terminal_day(as_of)}: it ends on {terminal_day(end)} "
            f"and can be reported from {terminal_day(end + timedelta(days=1))}")


def tehran_day(moment: datetime) -> date:
    return moment.astimezone(TEHRAN).date()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        value = value.normalize()
        return format(value if value != 0 else Decimal(0), "f")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# figures.json's edition: which figures it holds. Edition 1 (no "edition" key) lacked the cover, the
# open deviations by rule, a project's gap, planned end year, pace and late mark, an operation's
# achievement, actual unit cost and cost ratio, a deviation's threshold and the cycle's days and states
# (``_ADDED``); ``diff`` compares an archive with the figures of its own edition.
EDITION = 2
EDITION_KEY = "edition"
_STEPS = ("report", "approval", "review")  # the monitoring cycle's steps (reports/cycle.py)


def _step_state(step: Step) -> str:
    """A step of the cycle as the report says it: done, pending or not begun, and late («دیرکرد»)."""
    state = "not_begun" if step.days is None else ("done" if step.done else "pending")
    return state + ("_late" if step.late else "")


def figures(report: Report) -> dict[str, str | None]:
    """Every figure of the report under a stable key: what ``diff`` compares. A figure derived from
    others (a gap, a ratio, a cycle's days) is kept too, as the report shows it: the diff speaks in
    the report's terms. Left out: what names a row rather than measures it (titles, names, an
    agency's county or group, the unit of measure, a deviation's sentence and id), and what the
    archive fixes (the period, the as-of day, the moment it was made)."""
    out: dict[str, str | None] = {"cover/service_days": _text(report.service_days),
                                  "cover/reviewed_on": _text(report.reviewed_on)}
    for kind, rule, counts in report.rule_counts:
        for severity in SEVERITIES:
            out[f"rule/{kind}/{rule}/{severity}"] = _text(counts[severity])
        out[f"rule/{kind}/{rule}/all"] = _text(sum(counts.values()))
    for dimension, rows in (("county", report.counties), ("agency", report.agencies), ("group", report.groups),
                            ("total", [report.total])):
        for t in rows:
            prefix = f"{dimension}/{t.key}" if dimension != "total" else "total"
            for name in ("projects", "agreements", "approved", "notified", "allocated", "absorbed", "absorption",
                         "planned_progress", "reported_progress", "reports_due", "reports_entered",
                         "reports_approved", "reports_overdue"):
                out[f"{prefix}/{name}"] = _text(getattr(t, name))
            for severity, count in sorted(t.deviations.items()):
                out[f"{prefix}/deviations_{severity}"] = _text(count)
    for p in report.projects:
        prefix = f"project/{p.code}/q{p.quarter}"
        for name, value in (("target", p.target), ("reported", p.reported), ("gap", p.gap),
                            ("comptroller", p.comptroller), ("reported_on", p.reported_on),
                            ("visited_on", p.visited_on), ("observed", p.observed),
                            ("forecast", p.forecast.outlook), ("forecast_year", p.forecast.year),
                            ("forecast_late", "yes" if p.forecast.late else "no"),
                            ("end_year", p.forecast.end_year), ("pace", p.forecast.pace)):
            out[f"{prefix}/{name}"] = _text(value)
    for o in report.operations:
        prefix = f"operation/{o.agreement_no}/{o.code}"
        for name in ("planned", "delivered", "achievement", "spent", "unit_cost", "actual_unit_cost", "cost_ratio"):
            out[f"{prefix}/{name}"] = _text(getattr(o, name))
    for d in report.deviations:
        prefix = f"deviation/{d.kind}/{d.rule}/{d.subject}/q{d.quarter or 0}"
        for name in ("severity", "status", "planned", "actual", "threshold"):
            out[f"{prefix}/{name}"] = _text(getattr(d, name))
    for c in report.cycle:
        prefix = f"cycle/{c.agency_code}/q{c.quarter}"
        for name in ("due", "entered", "approved", "reported_on", "approved_on", "reviewed_on"):
            out[f"{prefix}/{name}"] = _text(getattr(c, name))
        for step in _STEPS:
            out[f"{prefix}/{step}_days"] = _text(getattr(c, step).days)
            out[f"{prefix}/{step}_state"] = _step_state(getattr(c, step))
    return dict(sorted(out.items()))


def _json(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")


def render_files(report: Report) -> dict[str, bytes]:
    """The archive's files of a report, by name."""
    return {"report.xlsx": excel.render(report), "report.html": html.render(report).encode("utf-8"),
            FIGURES: _json({EDITION_KEY: str(EDITION), **figures(report)})}


def manifest(files: dict[str, bytes], entry: Signoff) -> bytes:
    return _json({
        "fiscal_year": entry.fiscal_year, "quarter": entry.quarter, "approved_by": entry.approved_by,
        "approved_at": entry.approved_at.astimezone(UTC).isoformat(), "note": entry.note,
        "as_of": entry.as_of.isoformat(),
        "files": [{"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in sorted(files.items())],
    })


def review_days(conn, fiscal_year: int, *, until: datetime | None = None) -> dict[int, date]:
    """The approved quarters of a year and their sign-off day (Tehran): the cycle's review step.
    ``until``: only the sign-offs made by that moment (an archive's rebuild sees those its own
    approval saw, not a quarter approved later the same day)."""
    return {s.quarter: tehran_day(s.approved_at) for s in reviews.all_signoffs(conn)
            if s.fiscal_year == fiscal_year and (until is None or s.approved_at <= until)}


def _period_report(conn, fiscal_year: int, quarter: int, as_of: date, approved_at: datetime,
                   settings: Settings, extra_review: date | None = None) -> Report:
    days = review_days(conn, fiscal_year, until=approved_at)
    if extra_review is not None:
        days[quarter] = extra_review
    return build(conn, Selection(fiscal_year, quarter, as_of), routing=settings.routing,
                 report_due_days=settings.report_due_days, service_days=settings.service_days, reviews=days,
                 generated_at=approved_at, rules=settings.rules)


def _unrecorded(target: Path, fiscal_year: int, quarter: int) -> dict[str, Any] | None:
    """The manifest of the folder at ``target`` if it is what an approval killed between placing its
    folder and committing its sign-off leaves (``approve``): a folder (not a link) whose manifest.json
    names this period, holding nothing but the manifest and the files it lists. None: anything else,
    which is no approval's remnant and is not moved."""
    if target.is_symlink() or not target.is_dir():
        return None
    try:
        data = json.loads((target / MANIFEST).read_bytes())
        names = {f["name"] for f in data["files"]} | {MANIFEST}
        held = {p.name for p in target.iterdir()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data.get("fiscal_year") != fiscal_year or data.get("quarter") != quarter or not held <= names:
        return None
    return data


def _moment(text: Any) -> str:
    """A manifest's approval moment as the terminal writes it (Jalali, Tehran), or as it is."""
    try:
        return format_jalali(datetime.fromisoformat(text), with_time=True, persian_digits=False) + " (Tehran)"
    except (TypeError, ValueError):
        return str(text)


def _set_aside(target: Path, data: dict[str, Any]) -> Path:
    """Rename an unrecorded approval's folder to a hidden name beside it, never taken as an archive
    (``.1405-Q2.unrecorded-20261125T073000Z``, the moment its manifest says)."""
    try:
        stamp = datetime.fromisoformat(data.get("approved_at")).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    except (TypeError, ValueError):
        stamp = "unknown"
    for n in range(1000):
        aside = target.with_name(f".{target.name}.unrecorded-{stamp}" + (f"-{n}" if n else ""))
        if not os.path.lexists(aside):
            os.rename(target, aside)
            return aside
    raise ReviewError(f"{target} already exists though the store records no approval, and too many set aside "
                      "beside it: move them away first")


def _clear_partials(target: Path) -> None:
    """Remove the temporary folders of this period's approvals killed while writing their files
    (``.1405-Q2.partial-<pid>``). Called holding the period's claim (``approve``): an approval writes
    its temporary folder only while it holds it, so every one found then is a dead run's."""
    for leftover in target.parent.glob(f".{target.name}.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def approve(engine: Engine, fiscal_year: int, quarter: int, *, by: str, note: str | None, settings: Settings,
            now: datetime | None = None) -> Signoff:
    """Freeze a closed period: archive its report and record the sign-off, or change nothing (but
    set aside what an interrupted approval of the period left, and say so: "A kill", above)."""
    by, note = (by or "").strip(), (note or "").strip() or None
    if not by:
        raise ReviewError("say who approves (--by NAME)", 2)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    as_of = tehran_day(now)
    if not 1 <= quarter <= 4:
        raise ReviewError(f"--quarter {quarter}: use 1, 2, 3 or 4", 2)
    if not is_quarter_closed(fiscal_year, quarter, as_of):
        raise ReviewError(not_closed(fiscal_year, quarter, as_of))
    target = folder(settings.data_dir, fiscal_year, quarter)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    foreign = (f"{target} already exists though the store records no approval, and it is not what an "
               f"interrupted approval of {fiscal_year} Q{quarter} leaves: move it away first")
    try:
        with engine.begin() as conn:
            done = reviews.signoff(conn, fiscal_year, quarter)
            if done is not None:
                raise ReviewError(f"{fiscal_year} Q{quarter} was approved by {done.approved_by} on "
                                  f"{format_jalali(done.approved_at, with_time=True, persian_digits=False)} "
                                  "(Tehran): its archive is never rewritten")
            if os.path.lexists(target) and _unrecorded(target, fiscal_year, quarter) is None:
                raise ReviewError(foreign)  # before the report is built; looked at again below
            report = _period_report(conn, fiscal_year, quarter, as_of, now, settings, extra_review=as_of)
            files = render_files(report)
            data = manifest(files, Signoff(fiscal_year, quarter, by, now, note, as_of, str(target), ""))
            entry = Signoff(fiscal_year, quarter, by, now, note, as_of, str(target), hashlib.sha256(data).hexdigest())
            # The claim: the sign-off's row, inserted before any file is written and committed after
            # the folder is in place. Another approval of the period waits here (PostgreSQL: the
            # unique key's lock; SQLite: the write lock) until this one commits (it then fails on the
            # unique key) or rolls back or dies (its row goes with it), or until it has waited long
            # enough to say so (reviews.claim: a session frozen mid-approval holds it for good). So,
            # holding it, a folder or a temporary folder of the period that the store does not
            # record is a dead run's.
            reviews.claim(conn, entry)
            _clear_partials(target)
            if os.path.lexists(target):
                left = _unrecorded(target, fiscal_year, quarter)
                if left is None:
                    raise ReviewError(foreign)
                aside = _set_aside(target, left)
                log.warning("%s Q%s: %s held an approval by %s on %s that the store never recorded (interrupted "
                            "before its commit); set aside as %s, approving anew", fiscal_year, quarter, target,
                            left.get("approved_by"), _moment(left.get("approved_at")), aside.name)
            try:  # in the transaction: a file that cannot be written rolls the sign-off back
                partial.mkdir(parents=True)
                for name, content in {**files, MANIFEST: data}.items():
                    (partial / name).write_bytes(content)
                    os.chmod(partial / name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
                os.rename(partial, target)
            except OSError as exc:  # an operator's trial: a PermissionError, exit 1
                raise ReviewError(f"data_dir = '{settings.data_dir}': the archive cannot be written there "
                                  f"({exc.strerror or exc}; {getattr(exc, 'filename', None) or target}): nothing "
                                  "was approved; let this user write in data_dir and approve again", 2) from None
            # Nothing but the commit follows. A commit that fails (or a signal during it) may have
            # taken or not: the folder stays either way, an archive if it took, else an unrecorded
            # approval's folder, which the next approval of the period sets aside as above.
        # the transaction committed: the sign-off and its archive stand together
    except IntegrityError:
        raise ReviewError(f"{fiscal_year} Q{quarter} was approved by someone else meanwhile") from None
    except reviews.ClaimWaitedFor as exc:
        raise ReviewError(_claim_held(engine, fiscal_year, quarter, exc.seconds), CLAIM_HELD) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return entry


# exit code of an approval that gave up waiting for another (as `inspections import`'s wait: README)
CLAIM_HELD = 1


def _claim_held(engine: Engine, fiscal_year: int, quarter: int, seconds: float) -> str:
    """The line of an approval that waited `seconds` for the period's claim: on PostgreSQL another
    approval of the period holds it; on SQLite any writer may (the write lock is the store's)."""
    if engine.dialect.name == "postgresql":
        held = f"another approval of {fiscal_year} Q{quarter} is in progress (waited {seconds:g} s for it)"
    else:
        held = (f"the store was busy with another writer for {seconds:g} s (another approval of {fiscal_year} "
                f"Q{quarter}, a reconciliation or a sync)")
    return f"{held}; nothing was recorded: try again in a moment"


def _verified(entry: Signoff) -> tuple[list[str], dict[str, bytes]]:
    """What fails the archive's check (each a phrase naming the file: ``figures.json altered``), and
    the bytes of the files that passed it, read once: what ``diff`` then compares with is what was
    checked."""
    where = Path(entry.archive_path)
    if not where.is_dir():
        return [f"the archive folder {where} missing"], {}
    try:
        data = (where / MANIFEST).read_bytes()
    except FileNotFoundError:
        return [f"{MANIFEST} missing"], {}
    except OSError as exc:
        return [f"{MANIFEST} unreadable ({exc.strerror or exc.__class__.__name__})"], {}
    if hashlib.sha256(data).hexdigest() != entry.manifest_sha256:
        return [f"{MANIFEST} altered (its SHA-256 is not the one the store recorded)"], {}
    try:
        listed = [(f["name"], f["sha256"]) for f in json.loads(data)["files"]]
    except (ValueError, KeyError, TypeError):
        return [f"{MANIFEST} unreadable"], {}
    failed, verified = [], {}
    for name, digest in listed:
        try:
            content = (where / name).read_bytes()
        except FileNotFoundError:
            failed.append(f"{name} missing")
            continue
        except OSError as exc:
            failed.append(f"{name} unreadable ({exc.strerror or exc.__class__.__name__})")
            continue
        if hashlib.sha256(content).hexdigest() != digest:
            failed.append(f"{name} altered (its SHA-256 is not the manifest's)")
        else:
            verified[name] = content
    return failed, verified


def problems(entry: Signoff) -> list[str]:
    """Why the archive of a sign-off fails its check (empty: intact), each naming the file."""
    return _verified(entry)[0]


def intact(entry: Signoff) -> bool:
    """The archive's manifest has the digest the store recorded, and every file its digest."""
    return not problems(entry)


def periods(engine: Engine, *, today: date | None = None) -> list[Period]:
    """Every quarter of every fiscal year in the store, and any approved one, with its state."""
    today = today or datetime.now(TEHRAN).date()
    with engine.connect() as conn:
        signed = {(s.fiscal_year, s.quarter): s for s in reviews.all_signoffs(conn)}
        years = set(reporting.fiscal_years(conn)) | {y for y, _ in signed}
    out = []
    for year in sorted(years):
        for q in range(1, 5):
            entry = signed.get((year, q))
            if entry is not None:
                out.append(Period(year, q, "approved", entry, intact(entry)))
            else:
                out.append(Period(year, q, "open" if is_quarter_closed(year, q, today) else "not_closed"))
    return out


# --- how review diff names and shows a figure ----------------------------------------------------
# figures.json keeps every figure exactly under a key made for comparing (``agency/305/absorption``:
# 0.6428571428571428571428571429) and stays as it is: archives are signed. The consolidation group
# reads the diff, so each figure is named by what it belongs to and what it is, and shown as the
# report shows it (reports/precision.py, which the page and the workbook share): counts whole, million
# rials with up to 2 places, a unit cost with 2, percentages and ratios as percentages with up to one place
# (21%, 21.5%) and more near a threshold the rules compare them with (an achievement of 84.994% reads
# 84.99%, as in the report, not 85%), a project's gap in percentage points, its pace with one place,
# quantities with up to 2, a deviation's figures as its rule writes them (up to 2), days in Jalali.
# Written for the terminal (decisions.md): ASCII digits, English names, codes as stored. A
# change the report's places hide (40 -> 40.000001 both show 40%) is still a change: both sides are
# then shown with as many places as it takes to tell them apart, and ``finer`` says so. A figure's
# name carries its unit where the value does not: million rials for money, an operation's unit of
# measure for its quantities only (planned, delivered; a deviation's quantities), never for money.

COUNT, AMOUNT, UNIT_COST, POINTS, RATIO, FIGURE, DAY, YEAR, WORD, TEXT = (
    "count", "amount", "unit_cost", "points", "ratio", "figure", "day", "year", "word", "text")
GAP, PACE, ACHIEVEMENT, COST_RATIO = "gap", "pace", "achievement", "cost_ratio"
RULE_POINTS, RULE_RATIO = "rule_points", "rule_ratio"  # a deviation's percentages, as present.figure writes them
MILLION_RIALS = "million rials"
PERCENTAGE_POINTS = "percentage points"


@dataclass(frozen=True)
class _Number:
    places: int  # as the report shows it (reports/precision.py)
    trim: bool  # trailing zeros dropped (a quantity; a deviation's figures, as present.figure writes them)
    scale: int = 1  # a ratio is shown as a percentage
    suffix: str = ""
    limits: str = ""  # the report's Limits it is told apart from, as the report does (precision.points)


_NUMBERS = {
    # million rials to up to two places, as the report writes them since its credit stages showed a
    # break the rule flags (reports/precision.py, credit_stages), not whole
    COUNT: _Number(0, False), AMOUNT: _Number(2, True), UNIT_COST: _Number(2, False),
    POINTS: _Number(1, True, suffix="%"),
    RATIO: _Number(1, True, scale=100, suffix="%"),
    ACHIEVEMENT: _Number(1, True, scale=100, suffix="%", limits="achievement"),  # operation_shortfall's
    COST_RATIO: _Number(1, True, scale=100, suffix="%", limits="cost_ratio"),  # unit_cost_overrun's
    GAP: _Number(1, True, limits="gap"),  # points, progress_lag's limits; the name says the unit
    PACE: _Number(1, False),  # the workbook's 0.0
    FIGURE: _Number(2, True),  # a quantity, or a deviation's amount
    RULE_POINTS: _Number(2, True, suffix="%"),
    RULE_RATIO: _Number(2, True, scale=100, suffix="%"),
}
# each kind of row's figures, in the report's order: (name, how it is shown)
_COVER = {"service_days": ("service time of each step of the cycle (days)", COUNT),
          "reviewed_on": ("reviewed by the consolidation group on", DAY)}
_RULE = {**{s: (f"open deviations, {s}", COUNT) for s in reversed(SEVERITIES)},
         "all": ("open deviations, all severities", COUNT)}
_TOTALS = {
    "projects": ("projects", COUNT), "agreements": ("agreements", COUNT),
    **{stage: (f"{stage} credit ({MILLION_RIALS})", AMOUNT)
       for stage in ("approved", "notified", "allocated", "absorbed")},
    "absorption": ("absorption (absorbed / allocated)", RATIO),
    "planned_progress": ("planned progress, weighted", POINTS),
    "reported_progress": ("reported progress, weighted", POINTS),
    "reports_due": ("reports due", COUNT), "reports_entered": ("reports entered", COUNT),
    "reports_approved": ("reports approved by the comptroller", COUNT),
    "reports_overdue": ("reports overdue", COUNT),
    **{f"deviations_{s}": (f"open deviations, {s}", COUNT) for s in ("critical", "major", "minor")},
}
_PROJECT = {
    "target": ("planned progress (target)", POINTS), "reported": ("reported progress", POINTS),
    "gap": (f"gap from target, target - reported ({PERCENTAGE_POINTS})", GAP),
    "comptroller": ("comptroller's decision", WORD), "reported_on": ("report entered on", DAY),
    "visited_on": ("latest field visit on", DAY), "observed": ("progress observed at that visit", POINTS),
    "forecast_year": ("forecast year of completion", YEAR), "forecast": ("completion forecast", WORD),
    "forecast_late": ("forecast late: after the planned end year, or no progress (in red)", WORD),
    "end_year": ("planned end year", YEAR),
    "pace": (f"pace of progress ({PERCENTAGE_POINTS} per quarter)", PACE),
}
_OPERATION = {
    "planned": ("planned quantity, cumulative", FIGURE),
    "delivered": ("delivered quantity, cumulative", FIGURE),
    "achievement": ("achievement (delivered / planned)", ACHIEVEMENT),
    "spent": (f"spent, cumulative ({MILLION_RIALS})", AMOUNT),
    "unit_cost": (f"approved unit cost ({MILLION_RIALS})", UNIT_COST),
    "actual_unit_cost": (f"actual unit cost, spent / delivered ({MILLION_RIALS})", UNIT_COST),
    "cost_ratio": ("actual / approved unit cost", COST_RATIO),
}
_QUANTITIES = frozenset({"planned", "delivered"})  # an operation's figures counted in its unit of measure
_DEVIATION = {"severity": ("severity", WORD), "status": ("status", WORD), "planned": ("planned figure", None),
              "actual": ("actual figure", None),  # None: in its rule's unit (present.figure_unit)
              "threshold": ("threshold it was flagged by", TEXT)}
_CYCLE = {
    "due": ("items due", COUNT), "entered": ("items entered", COUNT),
    "approved": ("items approved by the comptroller", COUNT),
    "reported_on": ("report entered on", DAY),
    "report_days": ("days from the quarter's end to the report", COUNT),
    "report_state": ("report step", WORD),
    "approved_on": ("approved by the comptroller on", DAY),
    "approval_days": ("days from the report to the comptroller's approval", COUNT),
    "approval_state": ("comptroller's approval step", WORD),
    "reviewed_on": ("reviewed by the consolidation group on", DAY),
    "review_days": ("days from the approval to the group's review", COUNT),
    "review_state": ("consolidation group's review step", WORD),
}
_RULE_UNITS = {present.POINTS: RULE_POINTS, present.SHARE: RULE_RATIO, present.AMOUNT: FIGURE,
               present.QUANTITY: FIGURE}
# the report's order: the cover, the summaries, the open deviations by rule (beside them on the page),
# the projects, the operations, the deviations, the cycle
_SECTIONS = ("cover", "total", "group", "county", "agency", "rule", "project", "operation", "deviation", "cycle")
_PARTS = {"cover": "cover", "total": "province total", "group": "groups", "county": "counties", "agency": "agencies",
          "rule": "open deviations by rule", "project": "projects", "operation": "operations",
          "deviation": "deviations", "cycle": "monitoring cycle"}
# the figures each edition of figures.json added (section -> its fields, None: the whole section)
_ADDED: dict[int, dict[str, frozenset[str] | None]] = {
    2: {"cover": None, "rule": None,
        "project": frozenset({"gap", "forecast_late", "end_year", "pace"}),
        "operation": frozenset({"achievement", "actual_unit_cost", "cost_ratio"}),
        "deviation": frozenset({"threshold"}),
        "cycle": frozenset(f"{step}_{what}" for step in _STEPS for what in ("days", "state"))},
}


def _edition_of(key: str) -> int:
    """The edition of figures.json that first held a key's figure (1: from the first)."""
    section, field = key.partition("/")[0], key.rpartition("/")[2]
    for edition, sections in sorted(_ADDED.items()):
        if section in sections and (sections[section] is None or field in sections[section]):
            return edition
    return 1


@dataclass(frozen=True)
class _Names:
    """What the keys leave out, from the report the store gives now: agencies' names, units of
    measure, and the thresholds a figure is told apart from (the report's Limits)."""

    agencies: dict[str, str]
    measures: dict[tuple[str, str], str]  # (agreement, operation) -> unit of measure
    deviation_measures: dict[tuple[str, str, str, int], str]  # (kind, rule, subject, quarter) -> unit
    limits: Limits = Limits()

    @classmethod
    def of(cls, report: Report) -> _Names:
        agencies = {t.key: t.name for t in report.agencies}
        agencies |= {c.agency_code: c.agency_name for c in report.cycle}
        return cls(agencies, {(o.agreement_no, o.code): o.unit for o in report.operations if o.unit},
                   {(d.kind, d.rule, d.subject, d.quarter or 0): d.unit for d in report.deviations if d.unit},
                   report.limits)

    def agency(self, code: str) -> str:
        name = self.agencies.get(code)
        return f"agency {code} {name}" if name and name != code else f"agency {code}"


def _quarter(part: str) -> int:
    return int(part[1:]) if part[:1] == "q" and part[1:].isdigit() else 0


def _describe(key: str, names: _Names) -> tuple[tuple, str, str, str]:
    """(order, subject, figure's name, how it is shown) of a figures.json key (``figures``'s shapes;
    a code holding '/' is read from the ends). The order is the report's (``_SECTIONS``)."""
    section, _, rest = key.partition("/")
    field = rest.rpartition("/")[2] if rest else ""
    middle = rest.rpartition("/")[0]
    table: dict[str, tuple[str, str | None]] = {}
    subject, unit = key, None
    if section == "cover":
        table, subject = _COVER, "cover"
    elif section == "rule":
        kind, _, rule = middle.partition("/")
        table, subject = _RULE, f"rule {rule} ({kind})"
    elif section == "total":
        table, subject = _TOTALS, "province total"
    elif section in ("group", "county", "agency"):
        table = _TOTALS
        subject = names.agency(middle) if section == "agency" else f"{section} {middle}"
    elif section == "project":
        code, _, q = middle.rpartition("/")
        table, subject = _PROJECT, f"project {code}, Q{_quarter(q)}"
    elif section == "operation":
        agreement, _, code = middle.rpartition("/")
        table, subject = _OPERATION, f"agreement {agreement}, operation {code}"
        # the unit of measure is a quantity's, never money's: «spent (million rials)», not «… (جلسه)»
        unit = names.measures.get((agreement, code)) if field in _QUANTITIES else None
    elif section == "deviation":
        kind, rule, tail = (middle.split("/", 2) + ["", ""])[:3]
        code, _, q = tail.rpartition("/")
        quarter = _quarter(q)
        table = _DEVIATION
        subject = f"deviation {rule}, {code}, " + (f"Q{quarter}" if quarter else "whole year")
        how = present.figure_unit(kind, rule)
        if field in ("planned", "actual"):
            unit = (MILLION_RIALS if how == present.AMOUNT
                    else names.deviation_measures.get((kind, rule, code, quarter)) if how == present.QUANTITY
                    else None)
            table = {**_DEVIATION, field: (_DEVIATION[field][0], _RULE_UNITS.get(how, RULE_POINTS))}
    elif section == "cycle":
        agency, _, q = middle.rpartition("/")
        table, subject = _CYCLE, f"monitoring cycle, {names.agency(agency)}, Q{_quarter(q)}"
    if field not in table:  # a key of another shape (an archive older than this code): as it is
        return (len(_SECTIONS), key), "", key, WORD
    name, how = table[field]
    order = (_SECTIONS.index(section), middle, list(table).index(field))
    return order, subject, f"{name} ({unit})" if unit else name, how or WORD


def _number(value: Decimal, how: _Number, places: int, trim: bool) -> str:
    with localcontext() as ctx:
        ctx.prec = 200  # the places a change below the report's rounding may take
        shown = (value * how.scale).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)  # as present
        if trim:
            shown = shown.normalize()
        if not shown:
            shown = abs(shown)  # no '-0'
        return format(shown, ",f") + how.suffix


def _places(value: Decimal, number: _Number, limits: Limits) -> int:
    """The places the report shows a figure with: its own, or those that tell it from each of the
    thresholds the report tells it from (precision.points, as the page and the workbook)."""
    if not number.limits:
        return number.places
    bounds = [Decimal(limit) * number.scale for limit in getattr(limits, number.limits)]
    return max(number.places, precision.points(value * number.scale, bounds, scale=number.scale).places)


def _show(how: str, text: str | None, limits: Limits = Limits()) -> str:
    """A figures.json value as the report shows it, in the terminal's digits; None -> '(none)'."""
    if text is None:
        return "(none)"
    try:
        if how in _NUMBERS:
            number = _NUMBERS[how]
            value = Decimal(text)
            return _number(value, number, _places(value, number, limits), number.trim)
        if how == DAY:
            return format_jalali(date.fromisoformat(text), persian_digits=False)
    except (InvalidOperation, ValueError):
        return text
    if how == TEXT:  # the report's own words: its figures in ASCII digits, without the isolating marks
        return present.in_ascii(text)
    return text.replace("_", " ") if how == WORD else text


def _shown(how: str, archived: str | None, now: str | None, limits: Limits = Limits()) -> tuple[str, str, bool]:
    """Both sides as the report shows them, or with the places it takes to see they differ."""
    before, after = _show(how, archived, limits), _show(how, now, limits)
    if before != after or how not in _NUMBERS or archived is None or now is None:
        return before, after, False
    try:
        a, b = Decimal(archived), Decimal(now)
    except InvalidOperation:
        return archived, now, True
    number = _NUMBERS[how]
    exact = max(-(a * number.scale).as_tuple().exponent, -(b * number.scale).as_tuple().exponent)
    for places in range(max(_places(a, number, limits), _places(b, number, limits)) + 1, exact + 1):
        before, after = _number(a, number, places, False), _number(b, number, places, False)
        if before != after:
            return before, after, True
    return archived, now, True  # equal as numbers: a key written otherwise (not by this code)


def _absent(key: str, side: dict, missing: str) -> str:
    """How a figure one side lacks is shown: a row's count of deviations of a severity it has none of
    is written only where there are some, and the report shows 0; anything else the side lacks."""
    prefix, _, field = key.rpartition("/")
    if field.startswith("deviations_") and f"{prefix}/projects" in side:
        return "0"
    return missing


def _change(key: str, archived: dict, current: dict, names: _Names) -> tuple[tuple, Change]:
    order, subject, figure, how = _describe(key, names)
    before, after, finer = _shown(how, archived.get(key), current.get(key), names.limits)
    if key not in archived:
        before = _absent(key, archived, "(not in archive)")
    if key not in current:
        after = _absent(key, current, "(not in store)")
    return order, Change(key, archived.get(key), current.get(key), subject, figure, before, after, finer)


def _same_in_edition(key: str, archived: dict, current: dict, edition: int, report: Report) -> bool:
    """Whether two differing texts of `key` say the same fact as `edition` wrote it. Edition 1 wrote a
    report's entry day that the portal left empty as the quarter's last day (what the catalogue counts
    it as); it is shown empty now, which is no change of the store."""
    if edition >= 2 or current.get(key) is not None or not key.startswith("project/") \
            or not key.endswith("/reported_on"):
        return False
    quarter = _quarter(key.rsplit("/", 2)[1])
    return bool(quarter) and archived.get(key) == quarter_end(report.selection.year, quarter).isoformat()


@dataclass(frozen=True)
class Comparison:
    """What ``compare`` found: the changed figures, in the report's order, and the names of the
    figures the report now shows that the archive's edition of figures.json did not hold (not
    compared: an archive approved before they were kept)."""

    changes: list[Change]
    not_held: list[str]  # one per part of the report: 'projects: "planned end year", …'


def compare(archived: dict[str, Any], report: Report) -> Comparison:
    """The figures of ``archived`` (a figures.json) that ``report`` shows differently. An archive of
    an earlier edition is compared on the figures its edition holds: a figure added to figures.json
    since is no change of the store, and is named once in ``not_held`` instead of listed for every row."""
    archived = dict(archived)
    try:
        edition = int(archived.pop(EDITION_KEY, 1))
    except (TypeError, ValueError):
        edition = 1
    current, names = figures(report), _Names.of(report)
    later = {key for key in current if _edition_of(key) > edition and key not in archived}
    by_part: dict[str, dict[str, None]] = {}
    described = sorted((_describe(key, names) for key in later), key=lambda d: (d[0][0], d[0][-1]))
    for (section, *_), _, name, _ in described:  # each name once, in the report's order
        by_part.setdefault(_PARTS[_SECTIONS[section]], {})[name] = None
    for key in later:
        del current[key]
    differ = [k for k in set(archived) | set(current)
              if archived.get(k) != current.get(k) and not _same_in_edition(k, archived, current, edition, report)]
    ordered = sorted((_change(k, archived, current, names) for k in differ), key=lambda pair: pair[0])
    return Comparison([change for _, change in ordered],
                      [f"{part}: " + ", ".join(f'"{name}"' for name in fields) for part, fields in by_part.items()])


def diff(engine: Engine, fiscal_year: int, quarter: int, *, settings: Settings) -> tuple[Signoff, list[Change]]:
    """The figures of an approved period that the store now holds differently, in the report's order,
    each named and shown for people (``Change``). Reads the archive only. An archive approved before
    figures.json held some of the report's figures is compared on those it holds, and a warning
    names the others once (``compare``)."""
    with engine.connect() as conn:
        entry = reviews.signoff(conn, fiscal_year, quarter)
        if entry is None:
            raise ReviewError(f"{fiscal_year} Q{quarter} is not approved: nothing to compare with")
        failed, files = _verified(entry)  # what `review list` checks: a forged figure is no archived one
        if failed or FIGURES not in files:
            raise ReviewError(f"the archive of {fiscal_year} Q{quarter} at {entry.archive_path} fails its check: "
                              f"{'; '.join(failed or [f'{FIGURES} not in its manifest'])}; "
                              "not compared (`review list` shows it ALTERED OR MISSING)")
        try:
            archived = json.loads(files[FIGURES].decode("utf-8"))
        except ValueError as exc:
            raise ReviewError(f"cannot read the archive of {fiscal_year} Q{quarter} at {entry.archive_path}: "
                              f"{exc.__class__.__name__}", 1) from None
        report = _period_report(conn, fiscal_year, quarter, entry.as_of, entry.approved_at, settings)
    found = compare(archived, report)
    if found.not_held:
        log.warning("%s Q%s: the archive was approved before %s held these figures of the report, not compared: "
                    "%s", fiscal_year, quarter, FIGURES, "; ".join(found.not_held))
    return entry, found.changes
