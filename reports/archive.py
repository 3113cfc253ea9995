"""The consolidation group's sign-off: a monitoring period frozen into an archive that never changes.

``approve`` builds the whole province's report of a closed period as of the approval day, writes
``report.xlsx``, ``report.html`` and ``figures.json`` (every figure of the report under a stable
key) with a ``manifest.json`` of their SHA-256 digests into ``<data_dir>/archive/<year>-Q<q>/``,
and records who approved it, when, and the manifest's digest in the store (store/reviews.py) in
the same transaction. Approval is the cycle's group-review step, so the archived report shows it
done. The files are written to a temporary folder and renamed into place; the folder of an
approved period is never written again, and its files are made read-only.

The archive is byte-stable: the report is built from the stored as-of day and approval moment, the
workbook's creation date is that moment, and nothing else varies, so making it again from the same
store gives the same bytes. ``diff`` does exactly that, without touching the archive, and lists
the figures the store now holds differently (a late correction on a portal).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from foundation.jalali import TEHRAN, format_jalali, is_quarter_closed, quarter_end
from reconcile.settings import RoutingConfig
from reports import excel, html
from reports.model import Report, Selection, build
from store import reporting, reviews
from store.reviews import Signoff

MANIFEST = "manifest.json"
FIGURES = "figures.json"


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


@dataclass(frozen=True)
class Period:
    fiscal_year: int
    quarter: int
    state: str  # approved | open (closed, awaiting sign-off) | not_closed
    signoff: Signoff | None = None
    intact: bool | None = None  # approved: does the archive still match the digest in the store?


@dataclass(frozen=True)
class Change:
    key: str
    archived: str | None
    now: str | None


def folder(data_dir: Path, fiscal_year: int, quarter: int) -> Path:
    return Path(data_dir) / "archive" / f"{fiscal_year}-Q{quarter}"


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


def figures(report: Report) -> dict[str, str | None]:
    """Every figure of the report under a stable key: what ``diff`` compares."""
    out: dict[str, str | None] = {}
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
        for name, value in (("target", p.target), ("reported", p.reported), ("comptroller", p.comptroller),
                            ("reported_on", p.reported_on), ("visited_on", p.visited_on), ("observed", p.observed),
                            ("forecast", p.forecast.outlook), ("forecast_year", p.forecast.year)):
            out[f"{prefix}/{name}"] = _text(value)
    for o in report.operations:
        prefix = f"operation/{o.agreement_no}/{o.code}"
        for name in ("planned", "delivered", "spent", "unit_cost"):
            out[f"{prefix}/{name}"] = _text(getattr(o, name))
    for d in report.deviations:
        prefix = f"deviation/{d.kind}/{d.rule}/{d.subject}/q{d.quarter or 0}"
        for name in ("severity", "status", "planned", "actual"):
            out[f"{prefix}/{name}"] = _text(getattr(d, name))
    for c in report.cycle:
        prefix = f"cycle/{c.agency_code}/q{c.quarter}"
        for name in ("due", "entered", "approved", "reported_on", "approved_on", "reviewed_on"):
            out[f"{prefix}/{name}"] = _text(getattr(c, name))
    return dict(sorted(out.items()))


def _json(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")


def render_files(report: Report) -> dict[str, bytes]:
    """The archive's files of a report, by name."""
    return {"report.xlsx": excel.render(report), "report.html": html.render(report).encode("utf-8"),
            FIGURES: _json(figures(report))}


def manifest(files: dict[str, bytes], entry: Signoff) -> bytes:
    return _json({
        "fiscal_year": entry.fiscal_year, "quarter": entry.quarter, "approved_by": entry.approved_by,
        "approved_at": entry.approved_at.astimezone(UTC).isoformat(), "note": entry.note,
        "as_of": entry.as_of.isoformat(),
        "files": [{"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in sorted(files.items())],
    })


def review_days(conn, fiscal_year: int) -> dict[int, date]:
    """The approved quarters of a year and their sign-off day (Tehran): the cycle's review step."""
    return {s.quarter: tehran_day(s.approved_at) for s in reviews.all_signoffs(conn) if s.fiscal_year == fiscal_year}


def _period_report(conn, fiscal_year: int, quarter: int, as_of: date, approved_at: datetime,
                   settings: Settings, extra_review: date | None = None) -> Report:
    days = review_days(conn, fiscal_year)
    if extra_review is not None:
        days[quarter] = extra_review
    return build(conn, Selection(fiscal_year, quarter, as_of), routing=settings.routing,
                 report_due_days=settings.report_due_days, service_days=settings.service_days, reviews=days,
                 generated_at=approved_at)


def approve(engine: Engine, fiscal_year: int, quarter: int, *, by: str, note: str | None, settings: Settings,
            now: datetime | None = None) -> Signoff:
    """Freeze a closed period: archive its report and record the sign-off, or change nothing."""
    by, note = (by or "").strip(), (note or "").strip() or None
    if not by:
        raise ReviewError("say who approves (--by NAME)", 2)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    as_of = tehran_day(now)
    if not 1 <= quarter <= 4:
        raise ReviewError(f"--quarter {quarter}: use 1, 2, 3 or 4", 2)
    if not is_quarter_closed(fiscal_year, quarter, as_of):
        end = quarter_end(fiscal_year, quarter)
        raise ReviewError(f"{fiscal_year} Q{quarter} is not closed: it ends on "
                          f"{format_jalali(end, persian_digits=False)} ({end.isoformat()})")
    target = folder(settings.data_dir, fiscal_year, quarter)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    placed = False  # only what this call renamed into place may be removed again
    try:
        with engine.begin() as conn:
            done = reviews.signoff(conn, fiscal_year, quarter)
            if done is not None:
                raise ReviewError(f"{fiscal_year} Q{quarter} was approved by {done.approved_by} on "
                                  f"{format_jalali(done.approved_at, with_time=True, persian_digits=False)} "
                                  "(Tehran): its archive is never rewritten")
            if target.exists():
                raise ReviewError(f"{target} already exists though the store records no approval: move it away first")
            report = _period_report(conn, fiscal_year, quarter, as_of, now, settings, extra_review=as_of)
            files = render_files(report)
            data = manifest(files, Signoff(fiscal_year, quarter, by, now, note, as_of, str(target), ""))
            entry = Signoff(fiscal_year, quarter, by, now, note, as_of, str(target), hashlib.sha256(data).hexdigest())
            partial.mkdir(parents=True)
            for name, content in {**files, MANIFEST: data}.items():
                (partial / name).write_bytes(content)
                os.chmod(partial / name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.rename(partial, target)  # fails if another approval placed its folder meanwhile
            placed = True
            reviews.record_signoff(conn, entry)
        # the transaction committed: the sign-off and its archive stand together
    except IntegrityError:
        if placed:
            shutil.rmtree(target, ignore_errors=True)
        raise ReviewError(f"{fiscal_year} Q{quarter} was approved by someone else meanwhile") from None
    except BaseException:
        if placed:
            shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return entry


def intact(entry: Signoff) -> bool:
    """The archive's manifest has the digest the store recorded, and every file its digest."""
    where = Path(entry.archive_path)
    try:
        data = (where / MANIFEST).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.manifest_sha256:
            return False
        return all(hashlib.sha256((where / f["name"]).read_bytes()).hexdigest() == f["sha256"]
                   for f in json.loads(data)["files"])
    except (OSError, ValueError, KeyError):
        return False


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


def diff(engine: Engine, fiscal_year: int, quarter: int, *, settings: Settings) -> tuple[Signoff, list[Change]]:
    """The figures of an approved period that the store now holds differently. Reads the archive only."""
    with engine.connect() as conn:
        entry = reviews.signoff(conn, fiscal_year, quarter)
        if entry is None:
            raise ReviewError(f"{fiscal_year} Q{quarter} is not approved: nothing to compare with")
        try:
            archived = json.loads((Path(entry.archive_path) / FIGURES).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReviewError(f"cannot read the archive of {fiscal_year} Q{quarter} at {entry.archive_path}: "
                              f"{exc.__class__.__name__}", 1) from None
        current = figures(_period_report(conn, fiscal_year, quarter, entry.as_of, entry.approved_at, settings))
    keys = sorted(set(archived) | set(current))
    return entry, [Change(k, archived.get(k), current.get(k)) for k in keys if archived.get(k) != current.get(k)]
