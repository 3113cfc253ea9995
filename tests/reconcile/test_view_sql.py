"""The SQL form of a view (`view_condition`) against the same filter said of one row in Python
(`_admits`, here: the filter before it was SQL), and the JSON of
raw driver figures (`json_figure`, `json_objects`) against the JSON of the Decimal-typed rows, on
SQLite and PostgreSQL.

Views are drawn with a seeded `random.Random`: a failure names the seed and the view, and
re-running with the same seed reproduces it.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from foundation.persian import text_key
from foundation.vocabulary import DEVIATION_STATUSES, GROUPS, KINDS, SEVERITIES, SEVERITY_RANK
from reconcile import deviations as dv
from reconcile.findings import Finding
from reconcile.lifecycle import Found
from reconcile.settings import RoutingConfig
from store.models import County, Deviation

SEED = 1405_0902
N_ROWS = 240
N_VIEWS = 60

dev = Deviation.__table__
counties = County.__table__
FIGURES = ("planned", "actual", "measure")

# (name, another spelling of it, code): two counties share a code, one has none
COUNTIES = [("اهواز", "اهواز", "0601"), ("دزفول", "دِزفول", "0602"), ("شوشتر", "شوشتر", "0602"),
            ("کرمانشاه", "كرمانشاه", None), ("مشهد", "مشهد", "0901")]
MISSING_COUNTY = 9999  # a county id no county row has
AGENCIES = ["305", "306", "410", "411", "520", "601", "A7", ""]  # "" as well as None below
RULES = ["progress_lag", "missing_report", "credit_inconsistency", "operation_shortfall", "unit_cost_overrun"]
YEARS = [1402, 1403, 1404, 1405]
AWKWARD = [Decimal("0"), Decimal("-0"), Decimal("33.99994"), Decimal("98765432109.8765"), Decimal("0.1"),
           Decimal("-0.5"), Decimal("-33.99994"), Decimal("45"), Decimal("-7"), Decimal("1E+17"),
           Decimal("0.3333333333"), Decimal("1E-10"), Decimal("-0.0001"), Decimal("123456789012.345"),
           # whole numbers beyond 2**53, whose float is not their shortest decimal
           Decimal("123456789012345E+3"), Decimal("987654321098765E+2"), None]
# beyond PostgreSQL's NUMERIC(28, 10) (18 digits before the point): SQLite only
SQLITE_ONLY = [Decimal("1E+20"), Decimal("-1E+20"), Decimal("1E+22"), Decimal("250000000000000000000"),
               Decimal("1E+23")]


def _admits(view: dv.View, shown: dv.Shown, county_set: set[int] | None) -> bool:
    """Whether `view` shows one row: the reference the SQL condition must agree with."""
    if view.years and shown.fiscal_year not in view.years:
        return False
    if county_set is not None and shown.county_id not in county_set:
        return False
    if view.agencies and shown.agency_code not in view.agencies:
        return False
    if view.groups and shown.group not in view.groups:
        return False
    if view.rules and shown.rule not in view.rules:
        return False
    if view.kinds and shown.kind not in view.kinds:
        return False
    if view.min_severity and SEVERITY_RANK[shown.severity] < SEVERITY_RANK[view.min_severity]:
        return False
    if view.statuses:
        return shown.status in view.statuses
    return view.include_dismissed or shown.status != "dismissed"


def _select_findings(conn, findings: list[Finding], statuses: dict[tuple, tuple[int, str]], view: dv.View,
                     routing: RoutingConfig) -> list[dv.Shown]:
    """A run's findings (in memory), with their deviation's status, as `view` shows them, sorted."""
    county_set = dv.county_ids(conn, view.counties) if view.counties else None
    shown = []
    for f in findings:
        dev_id, status = statuses.get(f.key, (None, "open"))
        row = dv.Shown(dev_id, f.kind, f.rule, f.severity, f.subject, f.fiscal_year, f.quarter, f.planned, f.actual,
                       f.measure, status, f.message, f.agency_code, f.county_id, dv.group_of(f.agency_code, routing))
        if _admits(view, row, county_set):
            shown.append(row)
    return sorted(shown, key=dv.sort_key)


def _subset(rnd: random.Random, values: list, *, empty: float = 0.5) -> tuple:
    """An empty tuple (any) with probability `empty`, else a random non-empty subset."""
    if rnd.random() < empty:
        return ()
    return tuple(rnd.sample(values, rnd.randint(1, len(values))))


def _figure(rnd: random.Random) -> Decimal | None:
    if rnd.random() < 0.4:
        return rnd.choice(AWKWARD)
    return Decimal(rnd.randint(-10**8, 10**8)).scaleb(-rnd.randint(0, 4))


def _fill(engine, rnd: random.Random) -> tuple[dict[str, int], list[Any]]:
    """Counties and N_ROWS random deviations; the county ids by name, and the rows as stored."""
    with engine.begin() as conn:
        ids = {}
        for name, spelling, code in COUNTIES:
            assert text_key(spelling) == text_key(name)
            ids[name] = conn.execute(sa.insert(counties).values(name=name, name_key=text_key(name), code=code)
                                     .returning(counties.c.id)).scalar_one()
        rows = []
        for i in range(N_ROWS):
            rows.append(dict(
                kind=rnd.choice(KINDS), rule=rnd.choice(RULES), subject=f"13050{i:05d}-{rnd.randint(0, 999):03d}",
                fiscal_year=rnd.choice(YEARS), quarter=rnd.randint(0, 4), severity=rnd.choice(SEVERITIES),
                status=rnd.choice(DEVIATION_STATUSES), planned=_figure(rnd), actual=_figure(rnd),
                measure=_figure(rnd), message=f"پیام {i}", agency_code=rnd.choice([*AGENCIES, None]),
                county_id=rnd.choice([*ids.values(), None, MISSING_COUNTY]),
                first_found_on=date(2026, 1, 1), last_found_on=date(2026, 1, 1)))
        conn.execute(sa.insert(dev), rows)
        stored = conn.execute(sa.select(dev).order_by(dev.c.id)).all()
    assert len(stored) == N_ROWS
    return ids, stored


def _routing(rnd: random.Random) -> RoutingConfig:
    # a code no row carries ("999") is routed too, sometimes; sometimes nothing is routed; and
    # sometimes "" (group_of looks a row without an agency up as "": the SQL must do the same)
    routed = rnd.sample([*AGENCIES, "999"], rnd.randint(0, 5))
    return RoutingConfig(default=rnd.choice(GROUPS), agencies={code: rnd.choice(GROUPS) for code in routed})


def _view(rnd: random.Random) -> tuple[dv.View, set[str]]:
    """A random view, and the names of the counties it asks for."""
    wanted = _subset(rnd, list(range(len(COUNTIES))), empty=0.6)
    asked, names = [], set()
    for i in wanted:
        name, spelling, code = COUNTIES[i]
        asked.append(rnd.choice([name, spelling] + ([code] if code else [])))
        names |= {n for n, _, c in COUNTIES if n == name or (code and c == code and asked[-1] == code)}
    view = dv.View(years=_subset(rnd, [*YEARS, 1406]), counties=tuple(asked),
                   agencies=_subset(rnd, AGENCIES, empty=0.7), groups=_subset(rnd, list(GROUPS)),
                   rules=_subset(rnd, RULES, empty=0.6), kinds=_subset(rnd, list(KINDS), empty=0.7),
                   min_severity=rnd.choice([None, None, *SEVERITIES]),
                   statuses=_subset(rnd, list(DEVIATION_STATUSES), empty=0.6), include_dismissed=rnd.random() < 0.5)
    return view, names


def _shown(row: Any, routing: RoutingConfig, county: str | None = None) -> dv.Shown:
    return dv.Shown(row.id, row.kind, row.rule, row.severity, row.subject, row.fiscal_year, row.quarter or None,
                    row.planned, row.actual, row.measure, row.status, row.message, row.agency_code, row.county_id,
                    dv.group_of(row.agency_code, routing), county)


def _findings(rnd: random.Random, stored: list[Any], name_of: dict[int, str]
              ) -> tuple[list[Finding], dict[tuple, tuple[int, str]]]:
    """A run's findings: most stored deviations found again (with new figures), and some new ones;
    and the (id, status) of the stored deviation of each found again."""
    findings, statuses = [], {}
    for r in stored:
        if rnd.random() < 0.7:
            findings.append(Finding(r.rule, r.kind, r.subject, r.fiscal_year, r.quarter or None, r.severity,
                                    _figure(rnd), _figure(rnd), _figure(rnd), r.message, agency_code=r.agency_code,
                                    county_id=r.county_id, county=name_of.get(r.county_id)))
            statuses[findings[-1].key] = (r.id, r.status)
    for i in range(N_ROWS // 3):
        county_id = rnd.choice([*name_of, None, MISSING_COUNTY])
        findings.append(Finding(rnd.choice(RULES), rnd.choice(KINDS), f"new/{i:04d}-X", rnd.choice(YEARS),
                                rnd.choice([None, 1, 2, 3, 4]), rnd.choice(SEVERITIES), _figure(rnd), _figure(rnd),
                                _figure(rnd), f"تازه {i}", agency_code=rnd.choice([*AGENCIES, None]),
                                county_id=county_id, county=name_of.get(county_id)))
    return findings, statuses


def test_sql_views_show_what_admits_admits(engine):
    """For random views and routings: list_deviations (SQL) against _admits over every stored row,
    and a run's staged findings read through Found.rows(where=view_condition) against the Python
    path (_select_findings), their JSON with raw figures (json_objects) against Shown.as_json()."""
    rnd = random.Random(SEED)
    ids, stored = _fill(engine, rnd)
    name_of = {i: name for name, i in ids.items()}
    findings, statuses = _findings(rnd, stored, name_of)
    partial = empty = partial_found = 0
    with engine.connect() as conn:
        found = Found(conn)
        assert found.add(findings) == len(findings)
        for n in range(N_VIEWS):
            routing = _routing(rnd)
            view, names = _view(rnd)
            case = f"seed {SEED}, view #{n}: {view!r} with {routing!r}"
            county_set = dv.county_ids(conn, view.counties) if view.counties else None
            assert county_set == ({ids[name] for name in names} if view.counties else None), case
            # the deviations
            expected = sorted((s for s in (_shown(r, routing, name_of.get(r.county_id)) for r in stored)
                               if _admits(view, s, county_set)), key=dv.sort_key)
            got = dv.list_deviations(conn, view, routing)
            assert [s.id for s in got] == [s.id for s in expected], case
            assert got == expected, case  # every field, figures and county name included
            # `deviations list --format json` streams them with raw figures: the same JSON text as
            # the Shown each would be, with its first and last day found
            streamed = dv.stream_deviations(conn, view, routing, county_set, raw_figures=True)
            assert json.dumps(list(dv.listed_json_objects(streamed))) == json.dumps(
                [{**s.as_json(), "first_found_on": s.first_found_on.isoformat(),
                  "last_found_on": s.last_found_on.isoformat()} for s in got]), case
            partial += 0 < len(expected) < N_ROWS
            empty += not expected
            # a run's findings
            expected = [replace(s, county=name_of.get(s.county_id))  # _select_findings leaves the name out
                        for s in _select_findings(conn, findings, statuses, view, routing)]
            where = dv.view_condition(view, routing, county_set)
            got = list(dv.shown_rows(found.rows(where=where), routing))
            assert got == expected, case  # the same rows in the same order, every field
            # as JSON text: 0 and 0.0 are equal in Python, not in the output
            assert json.dumps(list(dv.json_objects(found.rows(where=where, raw_figures=True)))) == \
                json.dumps([s.as_json() for s in expected]), case
            partial_found += 0 < len(expected) < len(findings)
    # the views must tell rows apart, not show all or nothing
    assert partial >= N_VIEWS // 3 and partial_found >= N_VIEWS // 3 and empty >= 3, (partial, partial_found, empty)


def _raw(column: Any) -> Any:
    return sa.type_coerce(column, sa.types.NullType()).label(column.name)


def test_json_figure_of_raw_figures_is_json_number_of_decimals(engine):
    values = AWKWARD + (SQLITE_ONLY if engine.dialect.name == "sqlite" else [])
    rnd = random.Random(SEED + 2)
    written = []
    with engine.begin() as conn:
        for i in range(len(values)):  # each value in each column, next to the others
            figures = (values[i], values[(i + 1) % len(values)], values[(i + 5) % len(values)])
            written.append(figures)
            conn.execute(sa.insert(dev).values(
                kind="capital", rule="progress_lag", subject=f"J{i:03d}", fiscal_year=1405, quarter=rnd.randint(0, 4),
                severity="minor", status="open", planned=figures[0], actual=figures[1], measure=figures[2],
                message="m", first_found_on=date(2026, 1, 1), last_found_on=date(2026, 1, 1)))
        figures = [dev.c[name] for name in FIGURES]
        typed = conn.execute(sa.select(dev.c.id, *figures).order_by(dev.c.id)).all()
        raw = conn.execute(sa.select(dev.c.id, *(_raw(c) for c in figures)).order_by(dev.c.id)).all()
    assert len(typed) == len(raw) == len(values)
    raw_type = float if engine.dialect.name == "sqlite" else Decimal
    checked = 0
    for w, t, r in zip(written, typed, raw):
        assert t.id == r.id
        for name, wrote, decimal, driver in zip(FIGURES, w, t[1:], r[1:]):
            case = f"{name} written {wrote!r}: read {decimal!r}, raw {driver!r}"
            assert (driver is None) == (decimal is None) == (wrote is None), case
            if wrote is None:
                continue
            assert type(decimal) is Decimal and type(driver) is raw_type, case  # the raw read is the driver's
            # the same JSON text: 0 and 0.0, or 1e+20 and 100000000000000000000, are not the same
            assert json.dumps(dv.json_figure(driver)) == json.dumps(dv.json_number(decimal)), case
            assert json.dumps(dv.json_number(decimal)) == json.dumps(dv.json_number(wrote)), case
            checked += 1
    assert checked == 3 * (len(values) - 1)
    assert dv.json_figure(None) is None and dv.json_number(None) is None
