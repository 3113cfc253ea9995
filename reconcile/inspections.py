"""Importing field inspections (بازدید میدانی) from the CSV file or Excel workbook budget experts keep.

The file has a header row naming the columns ``project_code, date, observed_progress, inspector``
and optionally ``remarks``, in any order: a CSV file in UTF-8 with or without a byte-order mark, or
an .xlsx workbook (its first sheet; values, not formulas). Dates are Jalali
in any form the portal contracts allow (any digits, / - . separators, padded or not, day-first) or
ISO; numbers in Persian or ASCII digits, with or without a percent sign. A visit's day is neither
in the future nor before :data:`EARLIEST_VISIT` (1390/01/01).

Every row is validated before anything is written. If any row is bad, nothing is imported and
:class:`InspectionFileError` lists every bad row with its line number and reason. A visit is
identified by (project code, day, inspector); importing the same file again changes nothing. A row
whose visit is already stored with other figures (observed progress, remarks, inspector's spelling)
replaces them: the file is the expert's record, and a corrected file is how a mistake is mended.
A caller that limits who may record which project (the web console's experts) passes ``refuse``: a
row of a project it refuses is a bad row like any other, listed with its line among the rest.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from foundation.jalali import format_jalali, parse_day, today_tehran, year_start
from foundation.persian import NormalizationError, clean_text, parse_code, parse_number, text_key
from store import locks
from store.db import StoreError
from store.models import FieldInspection, Project

fi = FieldInspection.__table__
projects = Project.__table__

REQUIRED = ("project_code", "date", "observed_progress", "inspector")
OPTIONAL = ("remarks",)
MAX_REMARKS = 1000  # characters of a visit's remarks (5,000 overflowed the console's project page)
MAX_INSPECTOR = 100  # characters of an inspector's name (3,000 made the visits tables 15,000 px wide)
# the store keeps figures exactly (store.models.ExactDecimal): up to 15 significant digits on SQLite
_MAX_PLACES = 8
# the earliest day a visit may have, 1390/01/01 (2011-03-21): a day before it is a mistyped year (a
# trial recorded a visit of 1300/01/01), not a visit. A fixed floor, not the store's first fiscal
# year: a store that began syncing in 1404 may be given visits of earlier years, and the console and
# `budgetwatch inspections import` refuse alike whatever the store holds (docs/console.md)
EARLIEST_VISIT = year_start(1390)


@dataclass(frozen=True)
class BadRow:
    line: int  # 1 is the header
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class InspectionFileError(Exception):
    """The file cannot be imported: ``problems`` holds every bad row, or ``whole`` says what is wrong
    with the file itself (missing, a folder, not UTF-8, not a workbook)."""

    def __init__(self, path: str, problems: list[BadRow], whole: str | None = None) -> None:
        self.path = path
        self.problems = problems
        self.whole = whole
        super().__init__(f"{path}: {whole}; nothing imported" if whole
                         else f"{path}: {len(problems)} bad row(s), nothing imported")


def _whole(path: Path, problem: str) -> InspectionFileError:
    return InspectionFileError(str(path), [], problem)


SAVE_AS_UTF8 = ("in Excel, save it with Save As → \"CSV UTF-8 (Comma delimited)\", or import the .xlsx "
                "workbook itself")
_ZIP = b"PK\x03\x04"  # an .xlsx workbook is a zip archive
# the first bytes of files that hold no table, whatever their name: a PDF, a PNG, a JPEG, a GIF, an old
# .xls (OLE). A small PDF or a PNG has no NUL byte early and was called "not UTF-8 text … Windows-1256"
_NOT_TEXT = (b"%PDF-", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"\xd0\xcf\x11\xe0")
_UTF16 = (b"\xff\xfe", b"\xfe\xff")  # Excel's "Unicode Text" begins with one of these
NOT_A_TABLE = "is neither CSV text nor an Excel workbook (.xlsx)"
# A file's bounds. Its lines: a year's visits are a few thousand (2,025 in the 100k bench). A workbook
# unpacked: a 290 kB .xlsx of 87 MB of rows took 37 s and 240 MB in the console, 3 MB of it 2 min
# and 1.1 GB (a security review); 20,000 rows of five columns are ~3 MB of sheet.
MAX_LINES = 20_000
MAX_UNPACKED_BYTES = 25 * 1024 * 1024
# A sheet's rows and columns read at most: openpyxl pads each row out to the sheet's declared size
# (to column XFD) and yields the empty rows of a gap, so a 5 kB workbook declaring A1:XFD1048576 took
# 28 s for 20,000 rows and would take ~25 min for all (a review).
MAX_ROWS_READ = 2 * MAX_LINES
MAX_COLUMNS_READ = 64


@dataclass(frozen=True)
class Visit:
    line: int
    project_code: str
    visited_on: date
    observed_progress: Decimal
    inspector: str
    inspector_key: str
    remarks: str | None

    @property
    def key(self) -> tuple[str, date, str]:
        return (self.project_code, self.visited_on, self.inspector_key)


@dataclass
class ImportResult:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _records(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line, fields)]) of a CSV file (physical line numbers) or of an .xlsx workbook's
    first sheet (row numbers); blank lines skipped."""
    name = str(path)
    if not path.exists():
        raise _whole(path, "no such file")
    if path.is_dir():
        raise _whole(path, "is a folder, not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _whole(path, f"cannot read the file ({exc.strerror})") from None
    if raw.startswith(_ZIP) or path.suffix.lower() == ".xlsx":
        rows = _workbook_rows(path)
    elif raw.startswith(_NOT_TEXT) or (b"\x00" in raw[:8192] and not raw.startswith(_UTF16)):
        # a picture, a PDF, an old .xls: no text at all (a NUL byte is in no CSV but UTF-16's, which
        # has its byte order mark and is said to be no UTF-8 below), rather than "not UTF-8 text"
        raise _whole(path, NOT_A_TABLE)
    else:
        rows = _csv_rows(path, raw)
    if not rows:
        raise InspectionFileError(name, [BadRow(1, "empty file: a header row is required")])
    header, records = _header_of(rows[0][1]), rows[1:]
    if len(records) > MAX_LINES:
        raise _whole(path, f"holds more than {MAX_LINES:,} visits: split it into files of at most that many")
    return header, records


def _header_of(fields: list[str]) -> list[str]:
    return [cell.strip().lower().lstrip("\ufeff") for cell in fields]


def _csv_rows(path: Path, raw: bytes) -> list[tuple[int, list[str]]]:
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _whole(path, f"is not UTF-8 text (first at line {line}; Excel's plain CSV is Windows-1256): "
                           + SAVE_AS_UTF8) from None
    reader = csv.reader(io.StringIO(content, newline=""))
    rows, line = [], 1
    try:
        for fields in reader:
            if any(cell.strip() for cell in fields):
                rows.append((line, fields))
                if len(rows) > MAX_LINES + 1:  # the header and one more than a file may hold: said by _records
                    break
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InspectionFileError(str(path), [BadRow(reader.line_num, f"not readable as CSV ({exc})")]) from None
    return rows


def _workbook_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The first sheet of an .xlsx workbook as text cells, by row number (openpyxl, values not formulas).
    Refused before it is read when it unpacks to more than :data:`MAX_UNPACKED_BYTES`; read no further
    than a header that is not the visits' or :data:`MAX_LINES` visits."""
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise _whole(path, f"is not an Excel workbook openpyxl can read ({type(exc).__name__})") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise _whole(path, f"unpacks to {unpacked / 2**20:,.0f} MB, more than the {MAX_UNPACKED_BYTES // 2**20} MB "
                           f"a workbook of {MAX_LINES:,} visits takes: not read")
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl's own errors: the file is not a workbook it can read
        raise _whole(path, f"is not an Excel workbook openpyxl can read ({type(exc).__name__})") from None
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # the size the file declares is not trusted: the cells are read as they are
        rows: list[tuple[int, list[str]]] = []
        width = MAX_COLUMNS_READ  # until the header is read; then its columns and one more (a row too long)
        number = 0
        while number < MAX_ROWS_READ and len(rows) <= MAX_LINES + 1:
            # the header found, the rest read again from the row after it with the header's width
            for number, cells in enumerate(sheet.iter_rows(min_row=number + 1, max_col=width), number + 1):
                if number > MAX_ROWS_READ:
                    raise _whole(path, f"has rows past row {MAX_ROWS_READ:,}: a file holds at most {MAX_LINES:,} "
                                       "visits; split it, without empty rows between them")
                fields = [_cell_text(cell.value, getattr(cell, "number_format", None)) for cell in cells]
                while fields and not fields[-1].strip():  # Excel's empty trailing cells
                    fields.pop()
                if not any(cell.strip() for cell in fields):
                    continue
                rows.append((number, fields))
                if len(rows) == 1:  # a workbook that is not the visits' is said at its header, not after every row
                    _header(str(path), _header_of(fields))
                    width = len(fields) + 1
                    break
                if len(rows) > MAX_LINES + 1:  # the header and one more than a file may hold: said by _records
                    break
            else:
                break  # the sheet's last row read
    except InspectionFileError:
        raise
    except Exception as exc:  # a sheet's XML is read only as its rows are (read_only): broken there, the
        # file is not a workbook openpyxl can read either — a whole-file refusal, not a 500 (a trial)
        raise _whole(path, f"is not an Excel workbook openpyxl can read ({type(exc).__name__} in its first "
                           "sheet)") from None
    finally:
        book.close()
    if rows:  # a row's empty trailing cells are the header's empty columns, not missing fields
        width = len(rows[0][1])
        rows = [(n, fields + [""] * (width - len(fields))) for n, fields in rows]
    return rows


# the parts of an Excel number format that are shown as written, not formatting: "text", \x, [colour]
_FORMAT_LITERALS = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')


def _is_percentage(number_format: str | None) -> bool:
    """Whether Excel multiplies a cell's number by 100 to show it: a % in its format that is not
    written text (``0.0"%"`` shows 0.5 as "0.5%", a plain number)."""
    return bool(number_format) and "%" in _FORMAT_LITERALS.sub("", number_format)


def _cell_text(value: object, number_format: str | None = None) -> str:
    """A workbook cell as the CSV would have it: 12 not 12.0, a date as ISO, empty as ''; a number
    in a percentage cell as Excel shows it (0.42 formatted ``0%`` is "42%": read as 0.42 %, a visit of
    42 % became a critical deviation)."""
    if value is None:
        return ""
    if _is_percentage(number_format) and isinstance(value, int | float) and not isinstance(value, bool):
        shown = Decimal(repr(float(value))) * 100
        return format(shown.normalize(), "f") + "%"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _header(name: str, header: list[str]) -> dict[str, int]:
    problems = []
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    missing = [h for h in REQUIRED if h not in header]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if missing:
        problems.append(f"header lacks column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"header has unknown column(s) {', '.join(unknown)}")
    if repeated:
        problems.append(f"header repeats column(s) {', '.join(repeated)}")
    if problems:
        expected = ",".join(REQUIRED + OPTIONAL)
        raise InspectionFileError(name, [BadRow(1, "; ".join(problems) + f" (expected: {expected})")])
    return {h: i for i, h in enumerate(header)}


def _visit(line: int, fields: list[str], columns: dict[str, int], today: date) -> tuple[Visit | None, list[str]]:
    if len(fields) != len(columns):
        return None, [f"expected {len(columns)} fields, found {len(fields)}"]
    cell = {name: fields[i] for name, i in columns.items()}
    reasons: list[str] = []
    code = visited_on = observed = inspector = None
    try:
        code = parse_code(cell["project_code"], field="project_code")
    except NormalizationError as exc:
        reasons.append(f"project_code {cell['project_code']!r}: {exc.reason}")
    try:
        visited_on = parse_day(cell["date"])
        if visited_on > today:
            reasons.append(f"date {cell['date']!r} ({format_jalali(visited_on, persian_digits=False)}) is in the future")
        elif visited_on < EARLIEST_VISIT:
            reasons.append(f"date {cell['date']!r} ({format_jalali(visited_on, persian_digits=False)}) is before "
                           f"{format_jalali(EARLIEST_VISIT, persian_digits=False)}, the earliest day a visit may have")
    except NormalizationError as exc:
        reasons.append(f"date {cell['date']!r}: {exc.reason}")
    try:
        observed = parse_number(cell["observed_progress"], percent=True, field="observed_progress")
        if observed is None:
            reasons.append("observed_progress is empty")
        elif not 0 <= observed <= 100:
            reasons.append(f"observed_progress {cell['observed_progress']!r} is outside 0–100")
        elif -observed.as_tuple().exponent > _MAX_PLACES:
            reasons.append(f"observed_progress {cell['observed_progress']!r} has more than {_MAX_PLACES} decimal places")
    except NormalizationError as exc:
        reasons.append(f"observed_progress {cell['observed_progress']!r}: {exc.reason}")
    inspector = clean_text(cell["inspector"])
    if inspector is None:
        reasons.append("inspector is empty")
    elif len(inspector) > MAX_INSPECTOR:
        reasons.append(f"inspector has {len(inspector)} characters; at most {MAX_INSPECTOR}")
    remarks = clean_text(cell["remarks"]) if "remarks" in cell else None
    if remarks is not None and len(remarks) > MAX_REMARKS:
        reasons.append(f"remarks has {len(remarks)} characters; at most {MAX_REMARKS}")
    if reasons:
        return None, reasons
    return Visit(line, code, visited_on, observed, inspector, text_key(inspector), remarks), []


def read_visits(path: Path, *, known_codes: set[str] | None = None, today: date | None = None,
                refused: Mapping[str, str] | None = None,
                read: tuple[list[str], list[tuple[int, list[str]]]] | None = None) -> list[Visit]:
    """Every visit of the file, or InspectionFileError listing every bad row. ``refused`` maps a
    project code to the reason its rows may not be recorded (a user's permissions); ``read``, the
    file's header and rows already read (``_records``)."""
    name = str(path)
    header, records = read or _records(path)
    columns = _header(name, header)
    today = today or today_tehran()
    problems: list[BadRow] = []
    visits: list[Visit] = []
    first_line: dict[tuple, int] = {}
    for line, fields in records:
        visit, reasons = _visit(line, fields, columns, today)
        if visit is not None:
            if known_codes is not None and visit.project_code not in known_codes:
                reasons.append(f"unknown project code {visit.project_code!r}")
            elif refused and visit.project_code in refused:
                reasons.append(refused[visit.project_code])
            if visit.key in first_line:
                reasons.append(f"duplicate of line {first_line[visit.key]} (same project, date and inspector)")
            else:
                first_line[visit.key] = line
        problems.extend(BadRow(line, reason) for reason in reasons)
        if not reasons:
            visits.append(visit)
    if problems:
        raise InspectionFileError(name, problems)
    return visits


def _known_codes(conn: sa.Connection, read: tuple[list[str], list[tuple[int, list[str]]]]) -> set[str]:
    """Project codes of the store that the file's rows (``_records``) mention (read set-wise, before
    validation)."""
    header, records = read
    if "project_code" not in header:
        return set()
    column = header.index("project_code")
    wanted = set()
    for _line, fields in records:
        try:
            wanted.add(parse_code(fields[column]))
        except (IndexError, NormalizationError):
            continue
    found: set[str] = set()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), 1000):
        found |= set(conn.execute(sa.select(projects.c.code).where(projects.c.code.in_(ordered[start:start + 1000])))
                     .scalars())
    return found


Refusal = Callable[[sa.Connection, set[str]], Mapping[str, str]]


# how long an import waits for another to commit (PostgreSQL; SQLite waits the engine's busy timeout):
# an import writes a file's visits in a second or two, so a wait this long is one stuck half-way
IMPORT_WAIT_SECONDS = 60


class ImportsBusy(StoreError):
    """Another import held the lock imports take one at a time for :data:`IMPORT_WAIT_SECONDS`: said in one line."""

    exit_code = 1


def import_file(engine: Engine, path: str | Path, *, today: date | None = None,
                now: datetime | None = None, refuse: Refusal | None = None,
                also: Callable[[sa.Connection, ImportResult], None] | None = None) -> ImportResult:
    """Validate every row of `path`, then store its visits in one transaction (or raise, storing nothing).
    ``refuse(conn, codes)`` gives, of the store's project codes the file names, those the caller may
    not record, each with its reason; their rows are bad rows (checked in the same transaction).
    ``also(conn, result)`` writes more in that transaction once the visits are written (the console's
    log of acts): both are stored or neither."""
    path = Path(path)
    now = now or datetime.now(timezone.utc)
    # PostgreSQL: READ COMMITTED whatever the server's default, so that the largest revision is read
    # after the lock is granted (a REPEATABLE READ snapshot would be taken before it)
    committed = engine.execution_options(isolation_level="READ COMMITTED") \
        if engine.dialect.name == "postgresql" else engine
    read = _records(path)  # the file read and parsed before the lock (SQLite's write lock): no writer waits on it
    with committed.begin() as conn:
        # one import at a time, its revision drawn under the lock: revisions grow in the order imports
        # commit, so a reconciliation that saw revision r sees every later import as above r
        # (reconcile/changes.py: the project years whose visits changed since the last run)
        try:
            locks.one_writer_at_a_time(conn, locks.VISIT_IMPORTS, within=IMPORT_WAIT_SECONDS)
        except locks.LockWaitedFor:
            raise ImportsBusy(f"{path.name}: another import of field visits has been writing to the store for over "
                              f"{IMPORT_WAIT_SECONDS} s; nothing imported: import the file again once it has "
                              "ended") from None
        revision = conn.execute(sa.select(sa.func.coalesce(sa.func.max(fi.c.revision), 0) + 1)).scalar_one()
        known = _known_codes(conn, read)
        visits = read_visits(path, known_codes=known, today=today,
                             refused=refuse(conn, known) if refuse is not None else None, read=read)
        result = ImportResult(rows=len(visits))
        codes = sorted({v.project_code for v in visits})
        stored = {}
        for start in range(0, len(codes), 1000):
            for row in conn.execute(sa.select(fi).where(fi.c.project_code.in_(codes[start:start + 1000]))):
                stored[(row.project_code, row.visited_on, row.inspector_key)] = row
        inserts = []
        for v in visits:
            row = stored.get(v.key)
            values = {"observed_progress": v.observed_progress, "inspector": v.inspector, "remarks": v.remarks}
            if row is None:
                inserts.append({"project_code": v.project_code, "visited_on": v.visited_on,
                                "inspector_key": v.inspector_key, "source_file": path.name, "imported_at": now,
                                "revision": revision, **values})
                result.inserted += 1
            elif (Decimal(row.observed_progress) != v.observed_progress or row.inspector != v.inspector
                  or row.remarks != v.remarks):
                conn.execute(sa.update(fi).where(fi.c.id == row.id).values(
                    source_file=path.name, imported_at=now, revision=revision, **values))
                result.updated += 1
            else:
                result.unchanged += 1
        if inserts:
            conn.execute(sa.insert(fi), inserts)
        if also is not None:
            also(conn, result)
    return result
