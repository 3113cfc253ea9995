"""`budgetwatch export`: the normalised store as JSON lines."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from budgetwatch.app import UserError, app, context, err_console
from store.export import export_agreements, export_projects


class ExportKind(str, Enum):
    projects = "projects"
    agreements = "agreements"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot write {type(value).__name__}")


def write_jsonl(rows: Any, out: Any) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        n += 1
    return n


@app.command()
def export(
    kind: ExportKind = typer.Argument(..., help="projects (Nezarat-4) or agreements (SABA)."),
    year: int = typer.Option(None, "--year", "-y", help="Only this fiscal year."),
    fmt: str = typer.Option("jsonl", "--format", help="Output format (jsonl)."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
) -> None:
    """Write the normalised store, one JSON object per line."""
    if fmt != "jsonl":
        raise UserError(f"--format {fmt}: only jsonl is supported")
    engine = context().engine
    reader = export_projects if kind is ExportKind.projects else export_agreements
    with engine.connect() as conn:
        if output:
            with open(output, "w", encoding="utf-8") as out:
                n = write_jsonl(reader(conn, year), out)
            err_console.print(f"wrote {n} {kind.value} to {output}")
        else:
            write_jsonl(reader(conn, year), sys.stdout)
