"""The monitoring cycle of the service card, per agency and quarter, against its service time.

The cycle has three steps after a quarter ends: the agency enters its report (every project and
agreement due that quarter), the comptroller approves it (every one of them), and the consolidation
group reviews the period (its sign-off, `budgetwatch review approve`). Each step is counted in days
from the end of the step before it and compared with the service time (ten days by default,
``reports.service_days``). An agency's report is entered on the day its last due item was entered,
and approved on the day its last item was approved; a step not yet done counts the days it has
been waiting up to the as-of day, so a late step stands out before it is finished.

The cycle is seen as it stood on the as-of day: an entry, a comptroller approval or a group review
dated after it is not done yet (the step waits up to the as-of day), and a step whose start came
after it has not begun.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from foundation.jalali import quarter_end

SERVICE_DAYS = 10


@dataclass(frozen=True)
class Submission:
    """One project's or agreement's report for one quarter in which it was due."""

    agency_code: str
    quarter: int
    entered_on: date | None  # None: not entered
    approved_on: date | None  # None: not (yet) approved by the comptroller

    def seen_on(self, as_of: date) -> Submission:
        """The submission as it stood on ``as_of``: an entry or approval dated after it not yet made."""
        entered = self.entered_on if self.entered_on is not None and self.entered_on <= as_of else None
        approved = self.approved_on if entered is not None and self.approved_on is not None \
            and self.approved_on <= as_of else None
        return Submission(self.agency_code, self.quarter, entered, approved)


@dataclass(frozen=True)
class Step:
    days: int | None  # days taken; while pending, days waited so far; None: not started
    done: bool
    late: bool


@dataclass(frozen=True)
class CycleRow:
    agency_code: str
    agency_name: str
    group: str
    quarter: int
    quarter_end: date
    due: int
    entered: int
    approved: int
    reported_on: date | None
    approved_on: date | None
    reviewed_on: date | None
    report: Step
    approval: Step
    review: Step

    @property
    def late(self) -> bool:
        return self.report.late or self.approval.late or self.review.late


def step(start: date | None, end: date | None, as_of: date, service_days: int) -> Step:
    """A step from ``start`` to ``end`` as it stood on ``as_of``: not begun if its start is unknown or
    after that day; pending (the days waited up to it) if its end is unknown or after it."""
    if start is None or start > as_of:
        return Step(None, False, False)
    if end is None or end > as_of:
        waited = (as_of - start).days
        return Step(waited, False, waited > service_days)
    days = max((end - start).days, 0)
    return Step(days, True, days > service_days)


def cycle_rows(year: int, submissions: Iterable[Submission], *, agency_names: Mapping[str, str],
               group_of: Callable[[str], str], reviewed_on: Mapping[int, date], as_of: date,
               service_days: int = SERVICE_DAYS) -> list[CycleRow]:
    """One row per agency and quarter that had anything due, by quarter then agency code, as the
    cycle stood on ``as_of`` (``Submission.seen_on``; a review dated after it not yet made)."""
    grouped: dict[tuple[int, str], list[Submission]] = defaultdict(list)
    for s in submissions:
        grouped[(s.quarter, s.agency_code)].append(s.seen_on(as_of))
    rows = []
    for (quarter, agency), items in sorted(grouped.items()):
        end = quarter_end(year, quarter)
        entered = [s.entered_on for s in items if s.entered_on is not None]
        approved = [s.approved_on for s in items if s.approved_on is not None]
        reported_on = max(entered) if len(entered) == len(items) else None
        approved_on = max(approved) if reported_on and len(approved) == len(items) else None
        review = reviewed_on.get(quarter) if approved_on else None
        review = review if review is not None and review <= as_of else None
        rows.append(CycleRow(
            agency, agency_names.get(agency, agency), group_of(agency), quarter, end, len(items), len(entered),
            len(approved), reported_on, approved_on, review,
            step(end, reported_on, as_of, service_days),
            step(reported_on, approved_on, as_of, service_days),
            step(approved_on, review, as_of, service_days),
        ))
    return rows
