"""A hand-made province for report tests: rows written with the store's own models, exact values.

Agencies and counties are created on first use, so the builder also adds rows to a store a
simulated sync has filled. Days are Jalali text ('1405/04/05') or ISO.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from foundation.jalali import parse_day
from foundation.persian import text_key
from store import models as m


def D(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def day(text: str | None) -> date | None:
    return parse_day(text) if text else None


class Province:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _add(self, row):
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        return row

    def agency(self, code: str, name: str | None = None) -> str:
        with Session(self.engine) as s:
            if s.get(m.Agency, code) is None:
                name = name or f"دستگاه {code}"
                s.add(m.Agency(code=code, name=name, name_key=text_key(name)))
                s.commit()
        return code

    def county(self, name: str, code: str | None = None) -> int:
        with Session(self.engine) as s:
            found = s.exec(select(m.County).where(m.County.name_key == text_key(name))).first()
            if found is not None:
                return found.id
        return self._add(m.County(name=name, name_key=text_key(name), code=code)).id

    def project(self, code: str, *, year: int = 1405, title: str | None = None, agency: str = "305",
                county: str | None = "اهواز", targets=(30, 45, 60, 80), start=20, end_year: int = 1407,
                status: str = "exchanged", credits=((1000, 800, 600, 300),)) -> m.ProjectYear:
        self.agency(agency)
        county_id = self.county(county) if county else None
        with Session(self.engine, expire_on_commit=False) as s:
            project = s.exec(select(m.Project).where(m.Project.code == code)).first()
            if project is None:
                project = m.Project(code=code)
                s.add(project)
                s.flush()
            t = [D(x) for x in targets]
            py = m.ProjectYear(project_id=project.id, fiscal_year=year, title=title or f"پروژه {code}",
                               title_key=text_key(title or code), agency_code=agency, county_id=county_id,
                               start_year=1402, end_year=end_year, progress_at_year_start=D(start),
                               agreement_status=status, target_q1=t[0], target_q2=t[1], target_q3=t[2],
                               target_q4=t[3])
            s.add(py)
            s.flush()
            for i, (approved, notified, allocated, absorbed) in enumerate(credits):
                s.add(m.ProjectCredit(project_year_id=py.id, source=f"منبع {i}", source_key=f"source{i}",
                                      approved=D(approved), notified=D(notified), allocated=D(allocated),
                                      absorbed=D(absorbed)))
            s.commit()
            return py

    def report(self, py: m.ProjectYear, quarter: int, progress, *, absorbed=None, status: str = "approved",
               reported_on: str | None = None, decided_on: str | None = None) -> m.ProgressReport:
        return self._add(m.ProgressReport(project_year_id=py.id, quarter=quarter, progress=D(progress),
                                          absorbed=D(absorbed), comptroller_status=status,
                                          reported_on=day(reported_on), decided_on=day(decided_on)))

    def agreement(self, no: str, *, year: int = 1405, agency: str = "118", county: str | None = "دزفول",
                  status: str = "exchanged", chapters=((500, 400, 300, 200),)) -> m.ExpenseAgreement:
        self.agency(agency)
        county_id = self.county(county) if county else None
        a = self._add(m.ExpenseAgreement(agreement_no=no, fiscal_year=year, agency_code=agency, county_id=county_id,
                                         program_code="11002", program_title="آموزش کارکنان", status=status))
        for chapter, (approved, notified, allocated, spent) in enumerate(chapters, start=1):
            self._add(m.ExpenseCredit(agreement_id=a.id, chapter=chapter, approved=D(approved), notified=D(notified),
                                      allocated=D(allocated), spent=D(spent)))
        return a

    def operation(self, a: m.ExpenseAgreement, code: str, *, targets=(100, 100, 100, 100), unit_cost=2,
                  title: str = "آموزش ضمن خدمت") -> m.Operation:
        t = [D(x) for x in targets]
        return self._add(m.Operation(agreement_id=a.id, code=code, title=title, unit="نفر-ساعت", target_q1=t[0],
                                     target_q2=t[1], target_q3=t[2], target_q4=t[3], unit_cost=D(unit_cost)))

    def performance(self, o: m.Operation, quarter: int, quantity, spent, *, status: str = "approved",
                    reported_on: str | None = None, decided_on: str | None = None) -> m.OperationPerformance:
        return self._add(m.OperationPerformance(operation_id=o.id, quarter=quarter, quantity=D(quantity),
                                                spent=D(spent), comptroller_status=status,
                                                reported_on=day(reported_on), decided_on=day(decided_on)))

    def visit(self, code: str, on: str, observed) -> m.FieldInspection:
        return self._add(m.FieldInspection(project_code=code, visited_on=day(on), observed_progress=D(observed),
                                           inspector="کارشناس تلفیق", inspector_key="کارشناستلفیق"))

    def deviation(self, rule: str, subject: str, *, severity: str = "major", quarter: int = 2, year: int = 1405,
                  kind: str = "capital", status: str = "open", agency: str = "305", county: str | None = "اهواز",
                  message: str = "پیشرفت گزارش‌شده از برنامه عقب است.", planned: str | None = None,
                  actual: str | None = None, numbers: dict | None = None) -> m.Deviation:
        county_id = self.county(county) if county else None
        return self._add(m.Deviation(kind=kind, rule=rule, subject=subject, fiscal_year=year, quarter=quarter,
                                     severity=severity, status=status, message=message, agency_code=agency,
                                     numbers=numbers,
                                     planned=D(planned) if planned is not None else None,
                                     actual=D(actual) if actual is not None else None,
                                     county_id=county_id, first_found_on=date(2026, 10, 1),
                                     last_found_on=date(2026, 10, 1),
                                     updated_at=datetime(2026, 10, 1, tzinfo=UTC)))


def make_province(engine: Engine) -> Province:
    """Three projects, one agreement and six deviations whose every figure tests/reports/test_model.py
    states by hand: P-1 reported on time, P-2 missing its second quarter, P-3 cancelled, A-1 pending."""
    p = Province(engine)
    p.agency("305", "اداره کل راه و شهرسازی")
    p.agency("118", "اداره کل آموزش و پرورش")
    one = p.project("P-1", agency="305", county="اهواز", credits=((1000, 800, 600, 300), (200, 200, 100, 50)))
    p.report(one, 1, 30, reported_on="1405/04/05", decided_on="1405/04/10")
    p.report(one, 2, 40, reported_on="1405/07/05", decided_on="1405/07/12")
    p.visit("P-1", "1405/06/20", 35)
    two = p.project("P-2", agency="305", county="دزفول", targets=(10, 20, 30, 40), start=0,
                    credits=((500, 400, 300, 100),))
    p.report(two, 1, 10)  # no entry day: counts as entered on the quarter's last day
    p.project("P-3", agency="401", county="اهواز", status="cancelled", credits=((100, 100, 100, 100),))
    a = p.agreement("A-1", agency="118", county="دزفول", chapters=((500, 400, 300, 200), (100, 100, 50, 25)))
    op = p.operation(a, "op-1", targets=(100, 100, 100, 100), unit_cost=2)
    p.performance(op, 1, 90, 200, reported_on="1405/04/08", decided_on="1405/04/15")
    p.performance(op, 2, 80, 180, status="pending", reported_on="1405/07/03")
    p.deviation("progress_lag", "P-1", severity="minor")
    p.deviation("missing_report", "P-2", severity="major", county="دزفول")
    p.deviation("progress_lag", "P-9", severity="critical", status="dismissed")  # left out
    p.deviation("progress_lag", "P-8", severity="critical", status="resolved")  # left out
    p.deviation("progress_lag", "P-7", severity="critical", quarter=3)  # after the report's quarter
    p.deviation("credit_inconsistency", "A-1", severity="major", quarter=0, kind="expense", agency="118",
                county="دزفول")
    return p
