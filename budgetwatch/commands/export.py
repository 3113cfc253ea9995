"""`budgetwatch export`: the normalised store as JSON lines or CSV, dates in ISO with their Jalali twin."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from budgetwatch.app import UserError, app, context, err_console, fiscal_year, open_output
from foundation import present
from foundation.jalali import format_jalali
from store.export import export_agreements, export_projects


class ExportKind(str, Enum):
    projects = "projects"
    agreements = "agreements"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot write {type(value).__name__}")


def _jalali(day: str) -> str:
    return format_jalali(date.fromisoformat(day), persian_digits=False)


def with_jalali(record: Any) -> Any:
    """Each ISO date of a record (keys ending in _on or _date) followed by its Jalali twin
    (``reported_on_jalali``): machines read ISO, people the Jalali day."""
    if isinstance(record, list):
        return [with_jalali(item) for item in record]
    if not isinstance(record, dict):
        return record
    out: dict[str, Any] = {}
    for key, value in record.items():
        out[key] = with_jalali(value)
        if isinstance(value, str) and key.endswith(("_on", "_date")) and len(value) == 10:
            out[f"{key}_jalali"] = _jalali(value)
    return out


def write_jsonl(rows: Any, out: Any) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps(with_jalali(row), ensure_ascii=False, default=_json_default) + "\n")
        n += 1
    return n




def _cell(value: Any) -> Any:
    """A CSV cell: numbers as written, text that a spreadsheet would run as a formula made inert."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(present.FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _flat_projects(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One CSV row per project year: its fields, the four targets and the four quarters' reports side
    by side, the credit rows in one cell."""
    row = {k: v for k, v in record.items() if k not in ("credits", "targets", "reports")}
    for q in range(1, 5):
        row[f"target_q{q}"] = record["targets"].get(str(q))
    reports = {r["quarter"]: r for r in record["reports"]}
    for q in range(1, 5):
        report = reports.get(q, {})
        for field in ("progress", "absorbed", "reported_on", "reported_on_jalali", "comptroller_status"):
            row[f"q{q}_{field}"] = report.get(field)
    row["credits"] = "; ".join(f"{c['source']}: {c['approved']}/{c['notified']}/{c['allocated']}/{c['absorbed']}"
                               for c in record["credits"])
    yield row


def _flat_agreements(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One CSV row per operation of an agreement (the agreement's fields repeated), the four
    quarters' performance side by side, the chapters in one cell."""
    head = {k: v for k, v in record.items() if k not in ("credits", "operations")}
    head["chapters"] = "; ".join(f"{c['chapter']}: {c['approved']}/{c['notified']}/{c['allocated']}/{c['spent']}"
                                 for c in record["credits"])
    for o in record["operations"] or [{}]:
        row = dict(head)
        row.update({"operation_code": o.get("code"), "operation_title": o.get("title"), "unit": o.get("unit"),
                    "unit_cost": o.get("unit_cost")})
        targets = o.get("quarterly_targets") or [None] * 4
        items = {x["quarter"]: x for x in o.get("performance", [])}
        for q in range(1, 5):
            row[f"target_q{q}"] = targets[q - 1]
            for field in ("quantity", "spent", "reported_on", "reported_on_jalali", "comptroller_status"):
                row[f"q{q}_{field}"] = items.get(q, {}).get(field)
        yield row


def write_csv(rows: Any, out: Any, flatten: Any) -> int:
    """CSV in UTF-8 with a byte-order mark (Excel then reads Persian right), one header row."""
    out.write("\ufeff")
    writer, n = None, 0
    for record in rows:
        for row in flatten(with_jalali(record)):
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\r\n")
                writer.writeheader()
            writer.writerow({k: _cell(v) for k, v in row.items()})
        n += 1
    return n


@app.command()
def export(
    kind: ExportKind = typer.Argument(..., help="projects (Nezarat-4) or agreements (SABA)."),
    year_typed: str = typer.Option(None, "--year", "-y", help="Only this fiscal year."),
    fmt: str = typer.Option(None, "--format", help="jsonl (one JSON object per line) or csv (UTF-8 with BOM; "
                            "open it in Excel by Data → From Text/CSV to keep codes such as 032 as text). "
                            "Default: csv for an --output FILE.csv, else jsonl."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
) -> None:
    """Write the normalised store: JSON lines, or CSV for a spreadsheet (UTF-8 with BOM)."""
    suffix = output.suffix.lower() if output else ""
    if fmt is None:  # `-o projects.csv` wrote JSON lines into a .csv file, without a word (a trial)
        fmt = "csv" if suffix == ".csv" else "jsonl"
    if fmt not in ("jsonl", "csv"):
        raise UserError(f"--format {fmt}: use jsonl or csv")
    if (fmt, suffix) in (("jsonl", ".csv"), ("csv", ".jsonl"), ("csv", ".json")):
        raise UserError(f"--output {output}: a {suffix} file for --format {fmt}: name it .{'csv' if fmt == 'csv' else 'jsonl'}, "
                        "or give the format the name says")
    # 13 for 1403 exported nothing, silently
    year = None if year_typed is None else fiscal_year(year_typed, "--year")
    engine = context().engine
    reader = export_projects if kind is ExportKind.projects else export_agreements
    flatten = _flat_projects if kind is ExportKind.projects else _flat_agreements

    def write(out: Any) -> int:
        rows = reader(conn, year)
        return write_jsonl(rows, out) if fmt == "jsonl" else write_csv(rows, out, flatten)

    with engine.connect() as conn:
        if output:
            with open_output(output, newline="") as out:  # a full disk: one line, exit 2 (open_output)
                n = write(out)
            err_console.print(f"wrote {n} {kind.value} to {output}")
        else:
            write(sys.stdout)
