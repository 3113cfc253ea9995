"""`inspections import`: every row validated first, nothing imported when one is bad, re-import a no-op.

Store tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import reconcile
from reconcile.inspections import InspectionFileError, import_file
from reconcile_builders import Store, config, day
from store.models import FieldInspection

TODAY = day("1405/09/02")
HEADER = "project_code,date,observed_progress,inspector,remarks\n"


@pytest.fixture
def store(engine):
    s = Store(engine)
    s.project("1305012007-003")
    s.project("1305012007-004")
    return s


def write(tmp_path: Path, text: str, *, bom: bool = False, name: str = "visits.csv") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def stored(engine) -> list[tuple]:
    t = FieldInspection.__table__
    with engine.connect() as conn:
        return [(r.project_code, r.visited_on, r.observed_progress, r.inspector, r.inspector_key, r.remarks)
                for r in conn.execute(sa.select(t).order_by(t.c.project_code, t.c.visited_on))]


GOOD = (HEADER
        + "۱۳۰۵۰۱۲۰۰۷-۰۰۳,۱۴۰۵/۰۸/۱۰,۵۰٫۵,علی رضایی,کارگاه فعال\n"
        + "1305012007-004,1405-8-3,42%,\"كارشناس تلفيق\",\n")


def test_good_file_with_persian_digits_and_bom_is_imported(engine, store, tmp_path):
    result = import_file(engine, write(tmp_path, GOOD, bom=True), today=TODAY)
    assert (result.rows, result.inserted, result.updated, result.unchanged) == (2, 2, 0, 0)
    assert stored(engine) == [
        ("1305012007-003", day("1405/08/10"), Decimal("50.5"), "علی رضایی", "علیرضایی", "کارگاه فعال"),
        ("1305012007-004", day("1405/08/03"), Decimal(42), "کارشناس تلفیق", "کارشناستلفیق", None),
    ]


def test_reimport_of_the_same_file_changes_nothing(engine, store, tmp_path):
    path = write(tmp_path, GOOD)
    import_file(engine, path, today=TODAY)
    t = FieldInspection.__table__
    with engine.connect() as conn:
        before = [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.id))]
    result = import_file(engine, path, today=TODAY)
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 2)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.id))] == before


def test_corrected_value_for_the_same_visit_replaces_it(engine, store, tmp_path):
    import_file(engine, write(tmp_path, GOOD), today=TODAY)
    # same project, day and inspector (other spelling of the name): the observed value is corrected
    fixed = HEADER + "1305012007-004,1405/08/03,44,کارشناس تلفیق,\n"
    result = import_file(engine, write(tmp_path, fixed, name="fixed.csv"), today=TODAY)
    assert (result.inserted, result.updated) == (0, 1)
    assert stored(engine)[1][2] == Decimal(44)


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
def test_every_bad_row_is_listed_with_its_line_and_nothing_is_imported(engine, store, tmp_path):
    text = (HEADER
            + "1305012007-003,1405/08/10,50,علی رضایی,\n"        # 2: good
            + "9999999999-999,1405/08/10,50,علی,\n"              # 3: unknown code
            + "1305012007-003,1404/12/30,50,علی,\n"              # 4: no Esfand 30 in 1404
            + "1305012007-003,1405/08/11,پنجاه,علی,\n"            # 5: not a number
            + "1305012007-003,1405/08/12,100.5,علی,\n"           # 6: above 100
            + "1305012007-003,1405/08/13,-1,علی,\n"              # 7: below 0
            + "1305012007-003,1405/08/14,50,,\n"                 # 8: no inspector
            + "\n"                                                # 9: blank, skipped
            + "۱۳۰۵۰۱۲۰۰۷-۰۰۳,۱۴۰۵/۸/۱۰,50,علی  رضایی,\n"       # 10: duplicate of line 2
            + "1305012007-003,1405/08/15,50\n"                   # 11: too few fields
            + "1305012007-003,1405/10/01,50,علی,\n"              # 12: after today
            + "1305012007-003,1405/08/16,,علی,\n")               # 13: empty progress
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, write(tmp_path, text), today=TODAY)
    problems = {p.line: p.reason for p in caught.value.problems}
    assert sorted(problems) == [3, 4, 5, 6, 7, 8, 10, 11, 12, 13]
    assert "unknown project code '9999999999-999'" in problems[3]
    assert "date '1404/12/30'" in problems[4]
    assert "observed_progress 'پنجاه'" in problems[5]
    assert "outside 0–100" in problems[6] and "outside 0–100" in problems[7]
    assert problems[8] == "inspector is empty"
    assert problems[10].startswith("duplicate of line 2")
    assert problems[11] == "expected 5 fields, found 3"
    assert "in the future" in problems[12]
    assert problems[13] == "observed_progress is empty"
    assert stored(engine) == []


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
def test_header_is_required_and_checked(engine, store, tmp_path):
    with pytest.raises(InspectionFileError, match="bad row") as caught:
        import_file(engine, write(tmp_path, "1305012007-003,1405/08/10,50,علی,\n"), today=TODAY)
    assert caught.value.problems[0].line == 1 and "header lacks" in caught.value.problems[0].reason
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, write(tmp_path, "project_code,date,observed,inspector\n"), today=TODAY)
    assert "observed_progress" in caught.value.problems[0].reason
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, write(tmp_path, ""), today=TODAY)
    assert "header row is required" in caught.value.problems[0].reason


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
def test_not_utf8_is_refused_with_its_line_and_how_to_save_it(engine, store, tmp_path):
    path = tmp_path / "cp1256.csv"
    path.write_bytes(HEADER.encode() + "1305012007-003,1405/08/10,50,علي,\n".encode("cp1256"))
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, path, today=TODAY)
    said = str(caught.value)
    assert "is not UTF-8 text (first at line 2" in said and "CSV UTF-8 (Comma delimited)" in said
    assert caught.value.problems == [] and "bad row" not in said  # a file problem, not a row's


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
@pytest.mark.parametrize(("make", "said"), [
    (lambda tmp: tmp / "nowhere.csv", "no such file"),
    (lambda tmp: tmp, "is a folder, not a file"),
    (lambda tmp: (tmp / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a workbook") and tmp / "broken.xlsx",
     "is not an Excel workbook"),
    # a picture sent by mistake: no text at all, not "UTF-8 text saved by Excel as Windows-1256"
    (lambda tmp: (tmp / "site.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
     and tmp / "site.png", "is neither CSV text nor an Excel workbook (.xlsx)"),
    # a trial: a small PDF, and a PNG named .csv, have no NUL byte early: they were "not UTF-8 text"
    (lambda tmp: (tmp / "visits.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\n")
     and tmp / "visits.pdf", "is neither CSV text nor an Excel workbook (.xlsx)"),
    (lambda tmp: (tmp / "visits.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe IHDR") and tmp / "visits.csv",
     "is neither CSV text nor an Excel workbook (.xlsx)"),
])
def test_a_file_that_is_not_there_or_not_readable_is_named_for_what_it_is(engine, tmp_path, make, said):
    path = make(tmp_path)
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, path, today=TODAY)
    assert said in str(caught.value) and "line 0" not in str(caught.value)


def test_an_excel_workbook_is_imported_like_its_csv(engine, store, tmp_path):
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["project_code", "date", "observed_progress", "inspector", "remarks"])
    sheet.append(["1305012007-003", "1405/08/10", 50, "علی", None])      # a number cell, an empty one
    sheet.append(["1305012007-003", datetime(2026, 11, 2), 42.5, "زهرا", "بازدید دوم"])  # a date cell
    path = tmp_path / "visits.xlsx"
    book.save(path)
    result = import_file(engine, path, today=TODAY)
    assert (result.rows, result.inserted) == (2, 2)
    book.active.append(["1305012007-003", "1405/13/40", "x", "", None])
    book.save(path)
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, path, today=TODAY)
    assert {p.line for p in caught.value.problems} == {4}  # the sheet's row number


@pytest.mark.slow_on_postgresql  # how a workbook's cell is read, before the store
def test_a_percentage_cell_of_a_workbook_is_read_as_excel_shows_it(engine, store, tmp_path):
    # a new user's workbook: 0.42 in a cell formatted 0% reads 42% in Excel; taken as 0.42 %, the
    # visit opened a critical inspection_mismatch ("0.42 % seen")
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["project_code", "date", "observed_progress", "inspector"])
    sheet.append(["1305012007-003", "1405/08/10", 0.42, "علی"])
    sheet.append(["1305012007-004", "1405/08/10", 0.455, "زهرا"])
    sheet.append(["1305012007-004", "1405/08/11", 45.5, "زهرا"])  # a plain number cell stays as it is
    # review: a % written as text in the format is no percentage: 37.5 shows "37.5%"
    sheet.append(["1305012007-004", "1405/08/12", 37.5, "زهرا"])
    sheet["C2"].number_format = "0%"
    sheet["C3"].number_format = "0.0%"
    sheet["C5"].number_format = '0.0"%"'
    path = tmp_path / "visits.xlsx"
    book.save(path)
    assert import_file(engine, path, today=TODAY).inserted == 4
    assert [(r[0], r[2]) for r in stored(engine)] == [
        ("1305012007-003", Decimal("42")), ("1305012007-004", Decimal("45.5")), ("1305012007-004", Decimal("45.5")),
        ("1305012007-004", Decimal("37.5"))]


def test_columns_in_any_order_and_remarks_optional(engine, store, tmp_path):
    text = "inspector,observed_progress,date,project_code\nعلی,30,1405/08/10,1305012007-003\n"
    assert import_file(engine, write(tmp_path, text), today=TODAY).inserted == 1


def test_imported_visit_drives_inspection_mismatch(engine, store, tmp_path):
    py = store.project("1305012007-005")
    store.report(py, 1, 30, reported_on="1405/04/05")
    store.report(py, 2, 45, reported_on="1405/07/05")
    import_file(engine, write(tmp_path, HEADER + "1305012007-005,1405/08/10,20,علی,\n"), today=TODAY)
    found = [f for f in reconcile.run(engine, config(), as_of=TODAY).findings if f.rule == "inspection_mismatch"]
    [f] = found
    assert (f.subject, f.quarter, f.severity, f.measure) == ("1305012007-005", 2, "critical", Decimal(25))
    assert f.evidence_table == "field_inspection" and "بازدید میدانی ۱۴۰۵/۰۸/۱۰" in f.message


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
@pytest.mark.parametrize("field", ["inspector", "remarks"])
def test_an_inspector_or_remarks_longer_than_their_limit_is_a_bad_row(engine, store, tmp_path, field):
    # remarks: the console's form refused 5,000 characters, a file or `inspections import` took them;
    # an inspector: 3,000 letters made the console's visits tables 15,000 px wide (a trial)
    from reconcile.inspections import MAX_INSPECTOR, MAX_REMARKS

    limit = MAX_INSPECTOR if field == "inspector" else MAX_REMARKS

    def line(code: str, length: int) -> str:
        text = "ب" * length
        return f"{code},1405/08/10,50,{text},\n" if field == "inspector" else f"{code},1405/08/10,50,علی,{text}\n"

    path = write(tmp_path, HEADER + line("1305012007-003", limit + 1) + line("1305012007-004", limit))
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, path, today=TODAY)
    assert [(p.line, p.reason) for p in caught.value.problems] == [
        (2, f"{field} has {limit + 1} characters; at most {limit}")]
    assert stored(engine) == []


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
def test_a_workbook_that_unpacks_to_more_than_a_years_visits_is_refused_unread(engine, store, tmp_path):
    # a security review: a 290 kB .xlsx of 87 MB of rows took 37 s and 240 MB in the console, 3 MB of
    # it 2 minutes and 1.1 GB; the size a zip says it unpacks to is read before any XML is parsed
    import time
    import zipfile

    from reconcile import inspections

    bomb = tmp_path / "visits.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("xl/worksheets/sheet1.xml", b" " * (inspections.MAX_UNPACKED_BYTES + 1))
    assert bomb.stat().st_size < 100_000
    started = time.perf_counter()
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, bomb, today=TODAY)
    assert time.perf_counter() - started < 5
    assert "unpacks to 25 MB, more than the 25 MB" in str(caught.value) and "not read" in str(caught.value)
    assert stored(engine) == []


def _sheet_edited(book, folder: Path, edit) -> Path:
    """`book` saved as visits.xlsx with its first sheet's XML passed through `edit` (as a hand or a
    program other than Excel may leave it)."""
    import zipfile

    plain = folder / "plain.xlsx"
    book.save(plain)
    path = folder / "visits.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, edit(data) if item.filename == "xl/worksheets/sheet1.xml" else data)
    return path


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
def test_a_workbook_whose_sheet_is_broken_is_refused_whole(engine, store, tmp_path):
    # a security trial: its sheet's XML is parsed only as its rows are read (read_only), outside the
    # refusal of a file openpyxl cannot read: ParseError, exit 1 from the command and 500 in the console
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(HEADER.strip().split(","))
    path = _sheet_edited(book, tmp_path, lambda xml: xml.replace(b"</sheetData>", b"<row>"))
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, path, today=TODAY)
    assert "is not an Excel workbook openpyxl can read (ParseError in its first sheet)" in str(caught.value)
    assert stored(engine) == []


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
def test_a_workbook_whose_header_is_not_the_visits_is_refused_at_its_header(engine, store, tmp_path, monkeypatch):
    from openpyxl import Workbook

    from reconcile import inspections

    book = Workbook()
    book.active.append(["name", "phone"])
    for k in range(50):
        book.active.append([f"n{k}", k])
    book.save(tmp_path / "other.xlsx")
    read = []
    cell_text = inspections._cell_text
    monkeypatch.setattr(inspections, "_cell_text", lambda *a: read.append(a) or cell_text(*a))
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, tmp_path / "other.xlsx", today=TODAY)
    assert "header lacks column(s)" in caught.value.problems[0].reason
    assert len(read) == inspections.MAX_COLUMNS_READ  # the header row's cells, not the 100 below it


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
@pytest.mark.parametrize("name", ["visits.csv", "visits.xlsx"])
def test_a_file_of_more_visits_than_a_file_may_hold_is_refused_whole(engine, store, tmp_path, monkeypatch, name):
    from openpyxl import Workbook

    from reconcile import inspections

    monkeypatch.setattr(inspections, "MAX_LINES", 3)
    lines = [f"1305012007-003,1405/08/{day_:02d},50,علی رضایی," for day_ in range(1, 6)]
    if name.endswith(".csv"):
        path = write(tmp_path, HEADER + "\n".join(lines) + "\n")
    else:
        book = Workbook()
        for line in [HEADER.strip(), *lines]:
            book.active.append(line.split(","))
        path = tmp_path / name
        book.save(path)
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, path, today=TODAY)
    assert "holds more than 3 visits: split it into files of at most that many" in str(caught.value)
    assert stored(engine) == []


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
@pytest.mark.parametrize("trick", ["declared size", "a far cell"])
def test_a_small_workbook_that_declares_a_huge_sheet_is_read_quickly(engine, store, tmp_path, trick):
    # a review: openpyxl padded each row to the declared dimension (A1:XFD1048576) and yielded a
    # gap's empty rows: a 4.7 kB workbook took 28 s for 20,000 rows
    import re
    import time

    from openpyxl import Workbook

    book = Workbook()
    book.active.append(HEADER.strip().split(","))
    book.active.cell(row=60_000, column=1, value="1305012007-003")
    if trick == "a far cell":
        book.active.cell(row=2, column=16_384, value="x")
    declared = (lambda xml: re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:XFD1048576"/>', xml)) \
        if trick == "declared size" else (lambda xml: xml)
    path = _sheet_edited(book, tmp_path, declared)
    started = time.perf_counter()
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, path, today=TODAY)
    assert time.perf_counter() - started < 5
    assert "has rows past row 40,000" in str(caught.value)
    assert stored(engine) == []


# --- a visit's day has a floor, 1390/01/01 (a trial recorded a visit of 1300/01/01), as it has a
# ceiling (today): the import and the console refuse a day before it, naming the line

def test_the_earliest_day_a_visit_may_have_is_1390_01_01():
    from reconcile import inspections

    assert inspections.EARLIEST_VISIT == day("1390/01/01")


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
def test_a_visit_before_the_floor_or_after_today_is_a_bad_line_and_nothing_is_imported(engine, store, tmp_path):
    path = tmp_path / "visits.csv"
    path.write_text(HEADER
                    + "1305012007-003,1390/01/01,10,علی,\n"  # the floor itself: kept
                    + "1305012007-003,1300/01/01,20,علی,\n"
                    + "1305012007-003,۱۳۸۹/۱۲/۲۹,30,علی,\n"
                    + "1305012007-003,1950-06-01,30,علی,\n"  # ISO, a Gregorian day before it
                    + "1305012007-003,1405/09/03,40,علی,\n", encoding="utf-8")
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, path, today=TODAY)
    assert [str(p) for p in caught.value.problems] == [
        "line 3: date '1300/01/01' (1300/01/01) is before 1390/01/01, the earliest day a visit may have",
        "line 4: date '۱۳۸۹/۱۲/۲۹' (1389/12/29) is before 1390/01/01, the earliest day a visit may have",
        "line 5: date '1950-06-01' (1329/03/11) is before 1390/01/01, the earliest day a visit may have",
        "line 6: date '1405/09/03' (1405/09/03) is in the future",
    ]


@pytest.mark.slow_on_postgresql  # the file is refused before the store is written: one database is enough by default
def test_inspections_import_names_the_line_of_a_visit_before_the_floor(engine, store, store_url, tmp_path,
                                                                      monkeypatch, capsys):
    import budgetwatch.commands.reconcile  # noqa: F401 - registers the commands (cli.py imports it too)
    from budgetwatch.cli import main

    monkeypatch.delenv("BUDGETWATCH_CONFIG", raising=False)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "old.csv"
    path.write_text(HEADER + "1305012007-003,1300/01/01,50,علی,\n", encoding="utf-8")
    code = main(["inspections", "import", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "line 2: date '1300/01/01' (1300/01/01) is before 1390/01/01" in err
