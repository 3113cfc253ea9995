"""Hand-made store facts and settings for the alert tests: agencies, counties, subjects and deviations
inserted as rows, so each test states exactly which deviations exist and whom routing gives them to.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alerts.settings import AlertsConfig, Expert, RetryConfig, SmtpConfig
from reconcile.settings import RoutingConfig
from store.models import Agency, County, Deviation, ExpenseAgreement, Project, ProjectYear

T0 = datetime(2026, 12, 3, 5, 30, tzinfo=UTC)  # 1405/09/12 09:00 in Tehran
SENDER = "budgetwatch@mpo-kz.ir"

# agency code -> group, as config.yaml's routing says; 900 is routed nowhere: the default group
ROUTING = RoutingConfig(default="consolidation",
                        agencies={"305": "infrastructure", "118": "social", "220": "production"})
AGENCIES = {"305": "اداره کل راه و شهرسازی", "118": "اداره کل آموزش و پرورش", "220": "سازمان جهاد کشاورزی",
            "900": "استانداری خوزستان"}
COUNTIES = {1: "اهواز", 2: "دزفول", 3: "آبادان"}

SOCIAL = Expert(name="کارشناس امور اجتماعی", email="social@mpo-kz.ir", groups=["social"])
INFRA = Expert(name="کارشناس امور زیربنایی", email="infra@mpo-kz.ir", groups=["infrastructure"])
BOTH = Expert(name="کارشناس زیربنایی و تولیدی", email="Both@mpo-kz.ir", groups=["infrastructure", "production"])
TALFIQ = Expert(name="کارشناس گروه تلفیق", email="talfiq@mpo-kz.ir", groups=["consolidation"])
EXPERTS = [SOCIAL, INFRA, BOTH, TALFIQ]


def alerts_config(port: int = 1, **changes) -> AlertsConfig:
    """Alerts on, SMTP on 127.0.0.1:`port` without TLS, retries in milliseconds."""
    smtp = {"host": "127.0.0.1", "port": port, "security": "none", "timeout_seconds": 5, "password_env": None,
            **changes.pop("smtp", {})}
    retry = {"attempts_per_run": 2, "first_wait_seconds": 0.01, "max_wait_seconds": 0.05, **changes.pop("retry", {})}
    changes.setdefault("sender", SENDER)
    return AlertsConfig(enabled=True, smtp=SmtpConfig(**smtp), retry=RetryConfig(**retry), **changes)


class Facts:
    """Rows in a store: the reference data once, then deviations one by one (ids returned)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.codes = 0
        self.subjects: dict[int, str] = {}  # deviation id -> its subject code
        with engine.begin() as conn:
            conn.execute(sa.insert(Agency.__table__), [{"code": c, "name": n, "name_key": c} for c, n in AGENCIES.items()])
            conn.execute(sa.insert(County.__table__), [{"id": i, "name": n, "name_key": n} for i, n in COUNTIES.items()])

    def deviation(self, agency: str | None, severity: str, *, status: str = "open", rule: str = "progress_lag",
                  county: int | None = 1, title: str | None = None, planned="45", actual="12.5",
                  kind: str = "capital", quarter: int = 2,
                  message: str = "پیشرفت گزارش‌شده کمتر از برنامه است", numbers: dict | None = None) -> int:
        self.codes += 1
        subject = f"13050120{self.codes:02d}-003" if kind == "capital" else f"1405-032-{11000 + self.codes}"
        with self.engine.begin() as conn:
            if kind == "capital":
                project_id = conn.execute(sa.insert(Project.__table__).values(code=subject)
                                          .returning(Project.__table__.c.id)).scalar_one()
                conn.execute(sa.insert(ProjectYear.__table__).values(
                    project_id=project_id, fiscal_year=1405, title=title or f"احداث پل {self.codes}", title_key="x",
                    agency_code=agency or "900", county_id=county, agreement_status="exchanged"))
            else:
                conn.execute(sa.insert(ExpenseAgreement.__table__).values(
                    agreement_no=subject, fiscal_year=1405, agency_code=agency or "900", county_id=county,
                    program_code="11002", program_title=title or "آموزش کارکنان", status="exchanged"))
            deviation_id = conn.execute(sa.insert(Deviation.__table__).values(
                kind=kind, rule=rule, subject=subject, fiscal_year=1405, quarter=quarter, severity=severity,
                status=status, planned=Decimal(planned) if planned is not None else None,
                actual=Decimal(actual) if actual is not None else None, message=message, agency_code=agency,
                numbers=numbers,
                county_id=county, first_found_on=date(2026, 11, 20), last_found_on=date(2026, 11, 20),
                resolved_on=date(2026, 11, 30) if status == "resolved" else None,
            ).returning(Deviation.__table__.c.id)).scalar_one()
        self.subjects[deviation_id] = subject
        return deviation_id

    def change(self, deviation_id: int, **values) -> None:
        """What a reconciliation or a person's act does to a deviation (severity, status, ...)."""
        if values.get("status") == "resolved":
            values.setdefault("resolved_on", date(2026, 12, 1))
        with self.engine.begin() as conn:
            conn.execute(sa.update(Deviation.__table__).where(Deviation.__table__.c.id == deviation_id).values(**values))


def later(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


SUBJECT_CODE = re.compile(r"\d{10}-\d{3}|1405-032-\d{5}")


def plain_part(message) -> str:
    """The text part with its line ends as written (MIME text travels with CRLF)."""
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def html_part(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def subjects_in(text: str) -> set[str]:
    """The subject codes a digest's text names (news and resolved alike)."""
    return set(SUBJECT_CODE.findall(text))


def news_section(text: str) -> str:
    """A digest's text before its closing 'resolved' section."""
    return text.split("=== برطرف‌شده از رایانامه پیشین ===")[0]
