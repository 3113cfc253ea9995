"""What a rule is: identity, rationale, the unit it judges, its thresholds, one pure check.

A rule (after prozorro-risks' indicators) is a small class:

- ``id`` and ``kind`` — the catalogue's rule id and its family (capital | expense);
- ``rationale`` — one sentence saying why a budget expert cares;
- ``unit`` — what one call judges: a project's year, an agreement, or an operation of one;
- ``Limits`` — a frozen dataclass of its thresholds, named as the keys of
  ``reconcile.rules.<id>`` in config.yaml, with the catalogue's defaults;
- ``select(scope, limits)`` — its condition set-wise: a SQLAlchemy Core query returning only the
  subjects that may break it, with the figures the finding needs (reconcile/scope.py);
- ``findings(rows, scope, limits)`` / ``finding(row, …)`` — the exact decimal verdict on those rows
  and the Persian sentence (a row may make several findings: the year-to-date rules judge an
  operation at each closed quarter); ``checked(scope, limits)`` — how many subjects it judges.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from abc import ABC
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import sqlalchemy as sa

from foundation import present
from reconcile import wording as w
from reconcile.facts import CreditStages, Place
from reconcile.findings import Finding, Kind, round4, text, threshold
from reconcile.scope import Scope, at_least, zero


@functools.lru_cache(maxsize=64)
def limit_texts(limits: Any) -> Mapping[str, str | None]:
    """A rule's limits (a frozen dataclass) as ``numbers`` writes them (findings.text), made once
    per limits rather than once a finding: ``limit_texts(limits)["minor"]``."""
    return MappingProxyType({f.name: text(getattr(limits, f.name)) for f in dataclasses.fields(limits)})


@functools.lru_cache(maxsize=256)
def _banded(bands: tuple[tuple[str, str], ...], limits: Any, severity: str) -> tuple[Mapping[str, str], tuple[Decimal, ...]]:
    """:meth:`Rule.band`, made once per rule, limits and severity rather than once a finding."""
    said, names = limit_texts(limits), [name for _, name in bands]
    i = [s for s, _ in bands].index(severity)
    band = {"band": said[names[i]], **({"next": said[names[i + 1]]} if i + 1 < len(names) else {})}
    bounds = dict.fromkeys(getattr(limits, name) for name in (names[0], *names[i:i + 2]))
    return MappingProxyType(band), tuple(bounds)


# a finding's identity as SQL: (subject, fiscal year, quarter or 0)
Identity = tuple[sa.ColumnElement[str], sa.ColumnElement[int], sa.ColumnElement[int]]


@dataclass(frozen=True)
class NoLimits:
    """For rules whose only settings are the run's deadlines (report_due_days, approval_due_days)."""


class Rule(ABC):
    id: ClassVar[str]
    kind: ClassVar[Kind]
    unit: ClassVar[str]  # "project_year" | "agreement" | "operation"
    rationale: ClassVar[str]
    Limits: ClassVar[type] = NoLimits
    # How an incremental run (reconcile/changes.py) judges the rule:
    # - time_driven: its truth also changes because days pass, and only one way (a report now late,
    #   an approval now overdue, a year now begun): it is asked of every subject, and on a subject
    #   whose facts did not change only a finding not yet recorded is read (:meth:`identity`);
    # - whole: asked of every subject and resolved anywhere, for a rule whose facts no watermark
    #   covers (none since field visits carry their import's revision: reconcile/changes.py);
    # - neither: asked only of the subjects whose facts changed (a sync's writes, a field visit
    #   imported or whose day came since the last run).
    time_driven: ClassVar[bool] = False
    whole: ClassVar[bool] = False
    # a rule of several severities: each, from the lowest, with the limit (of Limits) where it begins;
    # the lowest's is the rule's threshold
    bands: ClassVar[tuple[tuple[str, str], ...]] = ()

    @property
    def name(self) -> str:
        """'capital.progress_lag': unique across both families."""
        return f"{self.kind}.{self.id}"

    @classmethod
    def limits_from(cls, settings: Any) -> Any:
        """The Limits of this rule from its config.yaml section (same key names)."""
        values = {}
        for f in dataclasses.fields(cls.Limits):
            raw = getattr(settings, f.name)
            values[f.name] = threshold(raw) if isinstance(f.default, Decimal) else raw
        return cls.Limits(**values)

    def band(self, limits: Any, severity: str, measure: Decimal) -> tuple[Mapping[str, str], tuple[Decimal, ...]]:
        """What a finding of `severity` keeps of its band in ``numbers`` — where the band begins
        (``"band"``) and where the next severity's begins (``"next"``, none for the highest) — and the
        limits its figures are shown apart from (its threshold and those two, but one its `measure`
        sits on: present.places_for, present.apart_from; 1.4999 times a unit cost, minor below 1.5,
        is not shown as 3 beside 2, and 1.5 times is)."""
        band, bounds = _banded(self.bands, limits, severity)
        return band, present.apart_from(bounds, measure)

    def select(self, scope: Scope, limits: Any) -> sa.Select:
        """The rows that may break this rule in `scope`, with every figure its finding needs.

        A superset is allowed (conditions loosened by scope.MARGIN: see reconcile/scope.py); a
        subset never. Rows of one subject come together when :meth:`findings` groups them.
        """
        raise NotImplementedError(self.name)

    def checked(self, scope: Scope, limits: Any) -> sa.Select:
        """SELECT count(*) of the subjects this rule judges in `scope` (its 'checked' statistic)."""
        raise NotImplementedError(self.name)

    def findings(self, rows: Iterable[Any], scope: Scope, limits: Any) -> Iterator[Finding]:
        """The findings of :meth:`select`'s rows, judged exactly: by default one row, at most one
        finding (:meth:`finding`)."""
        for row in rows:
            found = self.finding(row, scope, limits)
            if found is not None:
                yield found

    def clock(self, scope: Scope) -> str | None:
        """What besides the facts a time-driven rule's verdicts depend on as of the run's day, as
        text (the quarters now late, the approval cut-off, the years begun); None for other rules.
        An incremental run whose clock for the rule is the last recorded run's judges it only on
        the changed subjects, like any rule: on the others it would find what is recorded."""
        return None

    def moved(self, scope: Scope, then: str) -> sa.ColumnElement[bool] | None:
        """For a time-driven rule whose clock has moved since the last recorded run, which said
        `then` (:meth:`clock`): the condition, over :meth:`select`'s tables, that keeps the rows whose
        verdict the move can have changed. An incremental run reads, on the subjects whose facts did
        not change, only those rows: the rest were judged as they stand at the last run, and what
        they broke then is recorded (reconcile/engine.py ``_Recorded``). None (the default): every
        row whose finding is not recorded."""
        return None

    def identity(self, c: Any) -> Identity:
        """(subject, fiscal year, quarter or 0) of the finding a row of :meth:`select` would make, as
        SQL over the select's columns `c` (time-driven rules: an incremental run leaves out, in the
        database, the rows whose finding is already recorded; reconcile/engine.py)."""
        raise NotImplementedError(f"{self.name} is not time-driven")

    def finding(self, row: Any, scope: Scope, limits: Any) -> Finding | None:
        """The finding of one selected row when its exact figures break the rule, else None."""
        raise NotImplementedError(f"{self.name} words its rows in findings()")


class YearBegunRule(Rule):
    """A rule that judges a fiscal year once it has begun, one finding a subject and year, no
    quarter (completion_overdue, credit_inconsistency): time-driven on the years begun
    (:func:`begun_clock`), a move reaching only the years begun since (:func:`begun_moved`)."""

    time_driven = True
    subject_key: ClassVar[str]  # the select's column that names the subject (project_code, agreement_no)
    year_column: ClassVar[Any]  # the fiscal year's column of the select's subject table

    def identity(self, c: Any) -> Identity:
        return getattr(c, self.subject_key), c.fiscal_year, sa.literal(0)

    def clock(self, scope: Scope) -> str:
        return begun_clock(scope)

    def moved(self, scope: Scope, then: str) -> sa.ColumnElement[bool] | None:
        return begun_moved(scope, then, self.year_column)


def late_clock(scope: Scope) -> str:
    """The clock of the missing_report rules: the quarters whose report is past due."""
    return "late quarters " + ", ".join(f"{y}/{q}" for y in scope.years for q in scope.late(y))


def begun_clock(scope: Scope) -> str:
    """The clock of the rules that judge a year once it has begun (completion_overdue,
    credit_inconsistency: "a year that begins after [the as-of day] is not" checked)."""
    return f"years begun {list(scope.begun_years())}"


_BEGUN_CLOCK = re.compile(r"years begun \[((?:\d+(?:, )?)*)\]")


def begun_moved(scope: Scope, then: str, year: Any) -> sa.ColumnElement[bool] | None:
    """The :meth:`Rule.moved` of the rules on :func:`begun_clock`: a year that has begun stays begun,
    so a clock moved forward from `then` reaches only the rows of the years begun since (`year`: the
    rule's fiscal year column), not every year's (a review: on 1 Farvardin credit_inconsistency read
    every year's possibly-broken credits). None for a clock it cannot read or one moved back."""
    found = _BEGUN_CLOCK.fullmatch(then)
    if found is None:
        return None
    before = {int(y) for y in found[1].split(", ") if y}
    now = set(scope.begun_years())
    if not before <= now:
        return None
    return year.in_(sorted(now - before))


_APPROVAL_CLOCK = "approval cut-off "


def approval_clock(scope: Scope) -> str:
    """The clock of the approval_overdue rules: the day before which an unapproved entry is late."""
    return f"{_APPROVAL_CLOCK}{scope.approval_cutoff.isoformat()}"


def approval_moved(scope: Scope, then: str, entered: Any) -> sa.ColumnElement[bool] | None:
    """The approval_overdue rules' :meth:`Rule.moved`: an entry is late from the day after its
    cut-off on and stays late until approved (which is a change of its facts), so a cut-off moved
    forward from `then` reaches only the entries made on or after the cut-off then (`entered`: the
    rule's day of entry, as SQL). None for a clock it cannot read or one moved back."""
    if not then.startswith(_APPROVAL_CLOCK):
        return None
    try:
        since = date.fromisoformat(then.removeprefix(_APPROVAL_CLOCK))
    except ValueError:
        return None
    return entered >= since if since <= scope.approval_cutoff else None


def place_of(row: Any) -> Place:
    """Who reports and where, from a row of Scope.capital_subjects / expense_subjects."""
    return Place(row.agency_code, row.agency_name, row.county_id, row.county_name)


# --- money stages, shared by both families' credit_inconsistency -------------------------------


@dataclass(frozen=True)
class CreditLimits:
    """credit_inconsistency's threshold, one for both families (one ``reconcile.rules`` section)."""

    tolerance: Decimal = Decimal("0.5")  # million rials by which one stage may exceed the one before it


STAGE_NAMES = {"approved": "مصوب", "notified": "ابلاغی", "allocated": "تخصیص"}
# later stage -> the stage it must not exceed (catalogue: used > allocated > notified > approved)
_STAGE_PAIRS = (("used", "allocated"), ("allocated", "notified"), ("notified", "approved"))


@dataclass(frozen=True, slots=True)
class StageBreak:
    row: CreditStages
    later: str  # used | allocated | notified
    earlier: str  # allocated | notified | approved
    later_value: Decimal
    earlier_value: Decimal
    excess: Decimal  # later − earlier, rounded to 4 places


_STAGE_INDEX = {"approved": 1, "notified": 2, "allocated": 3, "used": 4}  # positions in CreditStages
_PAIRS = tuple((later, earlier, _STAGE_INDEX[later], _STAGE_INDEX[earlier]) for later, earlier in _STAGE_PAIRS)
_ZERO = Decimal(0)


def stage_breaks(rows: tuple[CreditStages, ...], tolerance: Decimal) -> list[StageBreak]:
    """Every pair of stages where the later one exceeds the earlier by more than `tolerance`.

    Empty amounts count as 0 (the catalogue's rule for figures the portal left empty).
    """
    found = []
    for row in rows:
        for later, earlier, i, j in _PAIRS:
            later_value = row[i] if row[i] is not None else _ZERO
            earlier_value = row[j] if row[j] is not None else _ZERO
            difference = later_value - earlier_value
            if difference <= 0 <= tolerance:  # the usual case: rounding cannot make it exceed
                continue
            excess = round4(difference)
            if excess > tolerance:
                found.append(StageBreak(row, later, earlier, later_value, earlier_value, excess))
    return found


def stages_may_break(approved: Any, notified: Any, allocated: Any, used: Any, tolerance: Decimal
                     ) -> sa.ColumnElement[bool]:
    """SQL: a credit row where a later stage may exceed the one before it by more than `tolerance`
    (empty amounts as 0; loosened by scope.MARGIN, :func:`stage_breaks` decides exactly)."""
    return sa.or_(at_least(zero(used) - zero(allocated), tolerance),
                  at_least(zero(allocated) - zero(notified), tolerance),
                  at_least(zero(notified) - zero(approved), tolerance))


def worst(breaks: list[StageBreak]) -> StageBreak:
    """The largest excess; on a tie the first row in the portal's order."""
    return max(breaks, key=lambda b: b.excess)  # max keeps the first of equal keys


def breaks_numbers(breaks: list[StageBreak]) -> list[dict[str, str | None]]:
    return [
        {
            "row": b.row.label,
            "stage": b.later,
            "exceeds": b.earlier,
            "value": text(b.later_value),
            "limit": text(b.earlier_value),
            "excess": text(b.excess),
        }
        for b in breaks
    ]


def describe_breaks(breaks: list[StageBreak], stage_words: dict[str, str], row_word: str, tolerance: Decimal
                    ) -> tuple[str, dict[str, Any]]:
    """credit_inconsistency's sentence after the subject's name, and the figures of its finding
    (planned, actual, measure, numbers with the `tolerance` compared, evidence), for a subject's
    `breaks`: the worst is told.
    `row_word` comes before the row's label ('ردیف ' for a funding source row; '' for a chapter)."""
    b = worst(breaks)
    more = f" (و {w.number(len(breaks) - 1)} ناسازگاری دیگر)" if len(breaks) > 1 else ""
    shown = {"rule": "credit_inconsistency", "bounds": (tolerance,)}  # the unit once, after the last amount
    sentence = (f"ارقام اعتبار ناسازگار دارد: در {row_word}«{b.row.label}» "
                f"{stage_words[b.later]} ({w.figure(b.later_value, b.earlier_value, **shown)}) "
                f"از {stage_words[b.earlier]} ({w.amount(b.earlier_value, b.later_value, **shown)}) "
                f"بیشتر است{more}")
    return sentence, {"planned": b.earlier_value, "actual": b.later_value, "measure": b.excess,
                      "numbers": {"breaks": breaks_numbers(breaks), "threshold": text(tolerance)},
                      "evidence": (b.row.evidence_table, b.row.evidence_id)}
