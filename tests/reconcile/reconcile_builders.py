"""Small builders for reconciliation tests: facts for the pure rule tests, rows for the store tests.

Defaults describe one ordinary project of Ahvaz and one expense agreement; a test states only what
it exercises.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timezone
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from foundation.jalali import parse_day
from reconcile.facts import (
    AgreementFacts,
    AsOf,
    CreditStages,
    InspectionFact,
    OperationFacts,
    OperationInAgreement,
    PerformanceFact,
    Place,
    ProgressReportFact,
    ProjectYearFacts,
)
from reconcile.settings import ReconcileConfig
from store import models as m

AHVAZ = Place("305", "اداره کل راه و شهرسازی", 1, "اهواز")
CODE = "1305012007-003"


def D(value) -> Decimal | None:  # noqa: N802 - reads like a literal
    return None if value is None else Decimal(str(value))


def day(text: str) -> date:
    """'1405/09/02' (Jalali) or ISO."""
    return parse_day(text)


def as_of(text: str, *, report_due_days: int = 15, approval_due_days: int = 15) -> AsOf:
    return AsOf(day(text), report_due_days, approval_due_days)


# --- pure facts --------------------------------------------------------------------------------


def report(quarter: int, progress=None, *, absorbed=None, status: str = "approved", reported_on: str | None = None,
           id: int | None = None, run_id: int | None = 7) -> ProgressReportFact:
    return ProgressReportFact(id or 100 + quarter, quarter, day(reported_on) if reported_on else None, D(progress),
                              D(absorbed), status, run_id)


def project(*, reports=(), targets=(30, 45, 60, 80), start=20, status: str = "exchanged", year: int = 1405,
            end_year: int | None = 1407, notified_total=None, credits=(), inspections=(),
            code: str = CODE) -> ProjectYearFacts:
    return ProjectYearFacts(
        id=1, project_code=code, fiscal_year=year, title="احداث پل روستایی", place=AHVAZ,
        agreement_status=status, start_year=1402, end_year=end_year, progress_at_year_start=D(start),
        targets=tuple(D(t) for t in targets), total_notified=D(notified_total), credits=tuple(credits),
        reports={r.quarter: r for r in reports}, inspections=tuple(inspections), run_id=3,
    )


def credit(label="ملی", approved=100, notified=100, allocated=100, used=100, *, id: int = 50,
           table: str = "project_credit") -> CreditStages:
    return CreditStages(label, D(approved), D(notified), D(allocated), D(used), table, id)


def visit(on: str, observed, *, id: int = 900, inspector: str = "کارشناس تلفیق") -> InspectionFact:
    return InspectionFact(id, day(on), D(observed), inspector)


def item(quarter: int, quantity=None, spent=None, *, status: str = "approved", reported_on: str | None = None,
         id: int | None = None) -> PerformanceFact:
    return PerformanceFact(id or 500 + quarter, quarter, D(quantity), D(spent), day(reported_on) if reported_on else None,
                           status, 9)


def operation(*, targets=(100, 100, 100, 100), unit_cost=1, items=(), code: str = "11002-03") -> OperationFacts:
    return OperationFacts(id=11, code=code, title="آموزش ضمن خدمت", unit="نفر‌ساعت",
                          targets=tuple(D(t) for t in targets), unit_cost=D(unit_cost),
                          performance={i.quarter: i for i in items})


def agreement(*, operations=(), credits=(), status: str = "exchanged", year: int = 1405,
              no: str = "1405-032-11002") -> AgreementFacts:
    return AgreementFacts(id=21, agreement_no=no, fiscal_year=year, program_title="آموزش کارکنان", place=AHVAZ,
                          status=status, credits=tuple(credits), operations=tuple(operations), run_id=4)


def op_unit(**kwargs) -> OperationInAgreement:
    status = kwargs.pop("agreement_status", "exchanged")
    o = operation(**kwargs)
    return OperationInAgreement(agreement(operations=(o,), status=status), o)


# --- the store ---------------------------------------------------------------------------------


def config(**reconcile) -> ReconcileConfig:
    """The ``reconcile`` section of config.yaml with these keys set (what reconcile.run takes)."""
    return ReconcileConfig.model_validate(reconcile)


class Store:
    """Inserts rows with the SQLModel classes; returns their ids."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with Session(engine) as s:
            s.add(m.SyncRun(id=1, source="nezarat4", mode="full", fiscal_years="1405",
                            started_at=datetime(2026, 1, 1, tzinfo=timezone.utc), status="success"))
            s.add(m.SyncRun(id=2, source="saba", mode="full", fiscal_years="1405",
                            started_at=datetime(2026, 1, 1, tzinfo=timezone.utc), status="success"))
            s.add(m.Agency(code="305", name="اداره کل راه و شهرسازی", name_key="ادارهکلراهوشهرسازی"))
            s.add(m.Agency(code="118", name="اداره کل آموزش و پرورش", name_key="ادارهکلآموزشوپرورش"))
            s.add(m.County(id=1, name="اهواز", name_key="اهواز", code="01"))
            s.add(m.County(id=2, name="دزفول", name_key="دزفول", code="05"))
            s.commit()

    def add(self, *rows):
        with Session(self.engine, expire_on_commit=False) as s:
            for row in rows:
                s.add(row)
                s.flush()
            s.commit()
        return rows[0] if len(rows) == 1 else rows

    def project(self, code: str = CODE, *, year: int = 1405, targets=(30, 45, 60, 80), start=20,
                status: str = "exchanged", end_year: int = 1407, county_id: int | None = 1, agency: str = "305",
                total=(None, None, None, None), gone: bool = False) -> m.ProjectYear:
        with Session(self.engine, expire_on_commit=False) as s:
            project = s.exec(select(m.Project).where(m.Project.code == code)).first()
            if project is None:
                project = m.Project(code=code)
                s.add(project)
                s.flush()
            t = [D(x) for x in targets]
            py = m.ProjectYear(project_id=project.id, fiscal_year=year, title=f"پروژه {code}", title_key=code,
                               agency_code=agency, county_id=county_id, start_year=1402, end_year=end_year,
                               progress_at_year_start=D(start), agreement_status=status, target_q1=t[0],
                               target_q2=t[1], target_q3=t[2], target_q4=t[3], total_approved=D(total[0]),
                               total_notified=D(total[1]), total_allocated=D(total[2]), total_absorbed=D(total[3]),
                               gone=gone, first_run_id=1, last_run_id=1)
            s.add(py)
            s.commit()
            return py

    def report(self, py: m.ProjectYear, quarter: int, progress, *, absorbed=None, status: str = "approved",
               reported_on: str | None = None) -> m.ProgressReport:
        on = day(reported_on) if reported_on else None
        return self.add(m.ProgressReport(project_year_id=py.id, quarter=quarter, progress=D(progress),
                                         absorbed=D(absorbed), comptroller_status=status, reported_on=on,
                                         first_run_id=1, last_run_id=1))

    def agreement(self, no: str = "1405-032-11002", *, year: int = 1405, status: str = "exchanged",
                  agency: str = "118", county_id: int | None = 2) -> m.ExpenseAgreement:
        return self.add(m.ExpenseAgreement(agreement_no=no, fiscal_year=year, agency_code=agency, county_id=county_id,
                                           program_code="11002", program_title="آموزش", status=status,
                                           first_run_id=2, last_run_id=2))

    def chapter(self, a: m.ExpenseAgreement, chapter: int, approved, notified, allocated, spent) -> m.ExpenseCredit:
        return self.add(m.ExpenseCredit(agreement_id=a.id, chapter=chapter, approved=D(approved), notified=D(notified),
                                        allocated=D(allocated), spent=D(spent), first_run_id=2, last_run_id=2))

    def operation(self, a: m.ExpenseAgreement, code: str = "11002-03", *, targets=(100, 100, 100, 100),
                  unit_cost=1) -> m.Operation:
        t = [D(x) for x in targets]
        return self.add(m.Operation(agreement_id=a.id, code=code, title="آموزش", unit="نفر", target_q1=t[0],
                                    target_q2=t[1], target_q3=t[2], target_q4=t[3], unit_cost=D(unit_cost)))

    def performance(self, o: m.Operation, quarter: int, quantity, spent=None, *, status: str = "approved",
                    reported_on: str | None = None) -> m.OperationPerformance:
        on = day(reported_on) if reported_on else None
        return self.add(m.OperationPerformance(operation_id=o.id, quarter=quarter, quantity=D(quantity),
                                               spent=D(spent), comptroller_status=status, reported_on=on,
                                               first_run_id=2, last_run_id=2))


def varied_store(engine: Engine, rnd: random.Random, *, projects: int = 30, totals: bool = True,
                 absorbed: tuple = (None, 10, 90)) -> None:
    """A store on which every rule fires on some subjects: `projects` projects of 1405 with random
    reports (and, with `totals`, random credit totals), as many agreements with two operations
    reported at random and a chapter of credits, every third one spent beyond its allocation. The
    same `rnd` seed builds the same store (the chapters take nothing from it: the rest of the store is
    what the seed made before they were added)."""
    store = Store(engine)
    for n in range(projects):
        extra = {"total": rnd.choice(((None,) * 4, (100, 90, 80, 70), (100, 120, 80, 70)))} if totals else {}
        p = store.project(f"1305012007-{n:03d}", targets=(30, 45, 60, 80), end_year=rnd.choice((1403, 1405, 1407)),
                          **extra)
        for q in (1, 2):
            if rnd.random() < 0.85:
                store.report(p, q, rnd.choice((12, 29, 44, 45, 60)), absorbed=rnd.choice(absorbed),
                             status=rnd.choice(("approved", "approved", "pending")),
                             reported_on=rnd.choice(("1405/04/05", "1405/07/05", "1405/08/25")))
        a = store.agreement(f"1405-032-{n:05d}")
        store.chapter(a, 1, 100, 90, 80, 95 if n % 3 == 0 else 60)  # spent > allocated: credit_inconsistency
        for k in range(2):
            o = store.operation(a, f"11002-{k:02d}", unit_cost=rnd.choice((1, 2)))
            for q in (1, 2):
                if rnd.random() < 0.9:
                    store.performance(o, q, rnd.choice((40, 79, 80, 100)), rnd.choice((None, 80, 150, 260)),
                                      status=rnd.choice(("approved", "pending")), reported_on="1405/07/05")


def recorded(engine: Engine) -> tuple[list, list, list]:
    """What a store recorded, to compare two stores run alike: every deviation (but its updated_at),
    every deviation's events in order (but their ids and times: a run that opens as it judges writes
    its opened events before its resolved ones, tests/reconcile/test_open_as_judged.py), every run's
    counts."""
    dev, ev, runs = m.Deviation.__table__, m.DeviationEvent.__table__, m.ReconcileRun.__table__
    with engine.connect() as conn:
        deviations = conn.execute(sa.select(*(c for c in dev.c if c.name != "updated_at")).order_by(dev.c.id)).all()
        events = conn.execute(sa.select(*(c for c in ev.c if c.name not in ("id", "at")))
                              .order_by(ev.c.deviation_id, ev.c.id)).all()
        stats = [(s["rules"], s["life"], s["findings"]) for s in
                 conn.execute(sa.select(runs.c.stats).order_by(runs.c.id)).scalars()]
    return deviations, events, stats


def sync_run(conn) -> int:
    """A new successful sync run's id, for a test that changes facts as a sync writes them."""
    runs = m.SyncRun.__table__
    top = conn.execute(sa.select(sa.func.max(runs.c.id))).scalar()  # varied_store inserts ids by hand
    return conn.execute(sa.insert(runs).returning(runs.c.id).values(
        id=top + 1, source="nezarat4", mode="incremental", fiscal_years="1405", status="success",
        started_at=datetime(2026, 12, 1, tzinfo=timezone.utc))).scalar_one()
