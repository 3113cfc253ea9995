"""Fixtures of the console's tests: a store (SQLite and PostgreSQL) with users and thousands of
deviations inserted in bulk, an application over it, and clients signed in as each role.

The deviations are hand-made rows (not a reconciliation's): the list's filters, sorting and pages
are about what is stored, and a bulk insert makes thousands in a blink. `expected` gives the rows as
inserted, so a test compares the page with a count made here in Python.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from budgetwatch.config import Config, parse_config
from store.db import open_store
from store.models import Agency, County, Deviation, DeviationEvent
from web import create_app
from web.users import create

PASSWORD = "correct horse battery staple"
SECRET = "s" * 48
AGENCIES = {"301": "social", "302": "social", "311": "infrastructure", "321": "production", "399": None}
RULES = ("progress_lag", "missing_report", "approval_overdue", "operation_shortfall", "unit_cost_overrun")
SEVERITIES = ("minor", "major", "critical")
STATUSES = ("open", "open", "open", "acknowledged", "resolved", "dismissed")
USERS = {  # name: (role, groups)
    "admin": ("admin", ()),
    "tolfiq": ("consolidation", ()),
    "social": ("expert", ("social",)),
    "infra": ("expert", ("infrastructure",)),
}


@contextlib.contextmanager
def serving(app: Any) -> Iterator[int]:
    """`app` served by uvicorn on a free loopback port (its number), stopped after the block."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def add_dredging(conn: sa.Connection, agreement_no: str, agency_code: str, program_code: str) -> None:
    """As the demo store's 1405-161-15004, operation 15004-01 (dredging, in metres): nothing planned or
    reported in the first quarter, 1,000 planned and 399 done in the second (a deviation «تحقق ۳۹٫۹٪»)."""
    from store.models import ExpenseAgreement, Operation, OperationPerformance

    agreement_id = conn.execute(sa.insert(ExpenseAgreement.__table__).values(
        agreement_no=agreement_no, fiscal_year=1405, agency_code=agency_code, program_code=program_code,
        status="exchanged").returning(ExpenseAgreement.__table__.c.id)).scalar_one()
    operation_id = conn.execute(sa.insert(Operation.__table__).values(
        agreement_id=agreement_id, code="15004-01", title="لایروبی", unit="متر", annual_target=1000,
        target_q2=1000).returning(Operation.__table__.c.id)).scalar_one()
    conn.execute(sa.insert(OperationPerformance.__table__).values(
        operation_id=operation_id, quarter=2, quantity=399, comptroller_status="approved"))


def console_config(data_dir: Path, **extra: Any) -> Config:
    routing = {"default": "consolidation", "agencies": {code: g for code, g in AGENCIES.items() if g}}
    return parse_config({"data_dir": str(data_dir), "routing": routing, **extra})


def add_users(engine: Engine) -> None:
    for name, (role, groups) in USERS.items():
        create(engine, name, PASSWORD, role=role, groups=groups, display_name=f"کاربر {name}")


def add_deviations(engine: Engine, n: int, seed: int = 3) -> list[dict[str, Any]]:
    """n deviations spread over agencies, counties, rules, years, quarters, severities, statuses."""
    rnd = random.Random(seed)
    now = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(sa.insert(Agency.__table__), [{"code": c, "name": f"دستگاه {c}", "name_key": f"دستگاه{c}"}
                                                   for c in AGENCIES])
        conn.execute(sa.insert(County.__table__), [{"id": i, "name": f"شهرستان {i}", "name_key": f"شهرستان{i}",
                                                    "code": f"{i:02d}"} for i in range(1, 6)])
        rows = []
        for i in range(n):
            kind = "capital" if i % 3 else "expense"
            rows.append({
                "kind": kind, "rule": rnd.choice(RULES),
                "subject": f"13050{i:05d}-001" if kind == "capital" else f"1405-{i:05d}",
                "fiscal_year": rnd.choice((1404, 1405)), "quarter": rnd.choice((0, 1, 2, 3, 4)),
                "severity": rnd.choice(SEVERITIES), "status": rnd.choice(STATUSES), "alert_state": "none",
                "planned": rnd.randint(10, 90), "actual": rnd.randint(0, 80), "message": f"مغایرت شمارهٔ {i}",
                "agency_code": rnd.choice(tuple(AGENCIES)), "county_id": rnd.choice((1, 2, 3, 4, 5, None)),
                "first_found_on": date(2026, 10, 1), "last_found_on": date(2026, 11, 20), "updated_at": now,
            })
        conn.execute(sa.insert(Deviation.__table__), rows)
        ids = conn.execute(sa.select(Deviation.__table__.c.id).order_by(Deviation.__table__.c.id)).scalars().all()
        conn.execute(sa.insert(DeviationEvent.__table__), [{"deviation_id": d, "event": "opened", "at": now,
                                                            "severity": r["severity"]} for d, r in zip(ids, rows)])
    for d, r in zip(ids, rows):
        r["id"] = d
    return rows


def group_of(agency: str | None) -> str:
    return AGENCIES.get(agency or "") or "consolidation"


@dataclass
class ConsoleStore:
    engine: Engine
    config: Config
    deviations: list[dict[str, Any]]

    def app(self, **kwargs: Any):
        return create_app(self.engine, self.config, secret=SECRET, **kwargs)

    def client(self, username: str | None = None, app=None, **kwargs: Any) -> TestClient:
        client = TestClient(app or self.app(**kwargs))
        if username:
            login(client, username)
        return client

    def deviation(self, **match: Any) -> dict[str, Any]:
        return next(r for r in self.deviations if all(r[k] == v for k, v in match.items()))


def login(client: TestClient, username: str, password: str = PASSWORD) -> None:
    response = post_login(client, {"username": username, "password": password}, follow_redirects=False)
    assert response.status_code == 303, response.text[:500]


def post_login(client: TestClient, data: dict[str, str], **kwargs: Any) -> Any:
    """POST /login as a browser does: with the token of the sign-in form it was given (GET /login)."""
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)[1]
    return client.post("/login", data={**data, "csrf": token}, **kwargs)


def csrf_of(client: TestClient) -> str:
    """The session's CSRF token, as every form of a page carries it."""
    import re

    html = client.get("/").text
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with its production cost takes ~0.4 s a hash on these shared machines, and every
    sign-in verifies one: the console's tests hash with argon2 at a low cost instead (the same
    code path; test_production_hashes_use_argon2s_default_cost checks the real parameters)."""
    from argon2 import PasswordHasher

    from web import auth

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def _console_store(engine: Engine, data_dir: Path, deviations: int = 3000) -> ConsoleStore:
    add_users(engine)
    rows = add_deviations(engine, deviations)
    return ConsoleStore(engine, console_config(data_dir), rows)


@pytest.fixture
def console_store(engine: Engine, tmp_path: Path) -> Iterator[ConsoleStore]:
    """Both databases: users of every role and 3,000 deviations (for what the store's queries decide)."""
    yield _console_store(engine, tmp_path)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStore]:
    """Like console_store, made once per module and database: for tests that only read."""
    from argon2 import PasswordHasher

    from store.db import scratch_schema
    from tests.conftest import PG_SKIP_REASON, _pg_url
    from web import auth

    folder = tmp_path_factory.mktemp("console")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{folder / 'store.db'}"
        else:
            if not _pg_url():
                pytest.skip(PG_SKIP_REASON)
            url = stack.enter_context(scratch_schema(_pg_url(), "bw"))
        engine = open_store(url)
        stack.callback(engine.dispose)
        with pytest.MonkeyPatch.context() as patch:  # cheap hashes, as quick_hashes gives every test
            patch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
            yield _console_store(engine, folder)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[ConsoleStore]:
    """SQLite only, for what does not depend on the database (sessions, forms, permissions): a few
    hundred deviations are enough there."""
    engine = open_store(f"sqlite:///{tmp_path / 'console.db'}")
    yield _console_store(engine, tmp_path, deviations=300)
    engine.dispose()
