"""An agreement number may hold '/' (a SABA agreementNo is any string: «۱۴۰۵/۰۳۲/۱۱۰۰۲» is read as
1405/032/11002), and an operation's deviation names `agreement_no/op`. The part before the first
'/' is then no agreement: the console's link led to a 404, the e-mail's titles and the agency of a
subject were not found. The store takes the longest part that is a stored agreement."""

from __future__ import annotations

from types import SimpleNamespace

from sqlmodel import Session

import store.models as m
from store import alerts as store_alerts
from store import console as store_console
from store.models import agreement_numbers_in

NUMBER = "1405/032/11002"


def test_a_subject_names_each_part_before_a_slash_longest_first():
    assert agreement_numbers_in(f"{NUMBER}/11002-03") == [f"{NUMBER}/11002-03", NUMBER, "1405/032", "1405"]
    assert agreement_numbers_in("1405-032-11002") == ["1405-032-11002"]


def _stored(engine) -> None:
    """The agreement and one operation, and a shorter number that is stored too (not the one named),
    beside whatever the store holds (the console's own store has agencies and counties already)."""
    with Session(engine) as s:
        for code in ("118", "999"):
            if s.get(m.Agency, code) is None:
                s.add(m.Agency(code=code, name=f"دستگاه {code}", name_key=code))
        s.flush()
        agreements = [m.ExpenseAgreement(agreement_no=number, fiscal_year=1405, agency_code=agency, program_code="11002",
                                         program_title="آموزش کارکنان", status="exchanged")
                      for number, agency in ((NUMBER, "118"), ("1405", "999"))]
        s.add_all(agreements)
        s.flush()
        s.add(m.Operation(agreement_id=agreements[0].id, code="11002-03", title="دوره‌های آموزشی", unit="نفر"))
        s.commit()


def test_the_store_finds_the_agreement_an_operations_subject_names(engine):
    _stored(engine)
    with engine.connect() as conn:
        assert store_console.agreement_of(conn, f"{NUMBER}/11002-03") == NUMBER
        assert store_console.agreement_of(conn, NUMBER) == NUMBER
        assert store_console.agreement_of(conn, "1406/1/2") is None
        assert store_console.subject_agency(conn, "expense", f"{NUMBER}/11002-03") == "118"
        names = store_alerts.names_of(conn, [SimpleNamespace(kind="expense", subject=f"{NUMBER}/11002-03",
                                                             agency_code="118", county_id=None)])
    assert names.titles[("expense", f"{NUMBER}/11002-03", 1405)].startswith("آموزش")


def test_the_console_opens_the_agreement_of_an_operations_subject(sqlite_store):
    _stored(sqlite_store.engine)
    client = sqlite_store.client("tolfiq")
    for path in (f"/agreements/{NUMBER}", f"/agreements/{NUMBER}/11002-03", "/agreements/۱۴۰۵/۰۳۲/۱۱۰۰۲"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert NUMBER in response.text
    assert client.get("/agreements/1406/1/2").status_code == 404
