"""Reference data both portals name: agencies, plans and counties, stored once whoever names them.

A new spelling of a known name is not a change (names are matched by their text key); an agency's
name takes a better spelling when one arrives (half-spaces where the first had none). County
names arrive canonical from the connectors (``foundation.counties``: هفتگل and هفتکل are one
county); here they are only matched by key, and a county first seen without a code (Nezarat-4 has
none) gets the code SABA gives it.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from foundation.persian import text_key
from store.models import Agency, County, Plan
from store.upsert import Changes, T, by_index, select_existing, upsert


def start_batch(conn: Connection, run_id: int, agencies: dict[str, str]) -> Changes:
    """Begin writing a batch of either portal: lookups by index (store.upsert.by_index), the
    agencies it names (code -> name) stored, and the change log its rows will be written with."""
    changes = Changes(run_id)
    by_index(conn)
    ensure_agencies(conn, agencies)
    return changes


def ensure_agencies(conn: Connection, agencies: dict[str, str]) -> None:
    """code -> name; a new spelling of the same name is not a change, but a better one is kept
    (:func:`better_spelling`): every output names an agency by this one row."""
    if not agencies:
        return
    existing = select_existing(conn, T(Agency), ["code"], ((c,) for c in agencies))
    rows = [
        dict(code=code, name=name, name_key=text_key(name) or "")
        for code, name in agencies.items()
        if (code,) not in existing or existing[(code,)]["name_key"] != text_key(name)
        or better_spelling(name, existing[(code,)]["name"])
    ]
    upsert(conn, T(Agency), rows, ["code"])


def better_spelling(new: str, old: str) -> bool:
    """Whether `new` writes the same name (the same text key) better than `old`: with more half-spaces
    (U+200C, the standard orthography: «کتابخانه‌های», where portals also write «کتابخانه های» and
    «کتابخانههای», letters run together), then with more spaces. A trial found an agency's name
    kept as first seen, without its half-spaces, in every e-mail, report and page."""
    return (new.count("\u200c"), new.count(" ")) > (old.count("\u200c"), old.count(" "))


def ensure_plans(conn: Connection, plans: dict[str, str | None]) -> None:
    rows = [dict(code=code, title=title) for code, title in plans.items()]
    existing = select_existing(conn, T(Plan), ["code"], ((c,) for c in plans))
    rows = [r for r in rows if (r["code"],) not in existing or text_key(existing[(r["code"],)]["title"]) != text_key(r["title"])]
    upsert(conn, T(Plan), rows, ["code"])


def ensure_counties(conn: Connection, counties: Iterable[tuple[str | None, str | None]]) -> dict[str, int]:
    """(name, code) pairs -> ids by name key. Counties are matched by name key (Nezarat-4 has no codes)."""
    wanted: dict[str, tuple[str, str | None]] = {}
    for name, code in counties:
        key = text_key(name)
        if key:
            prev = wanted.get(key)
            wanted[key] = (name, code or (prev[1] if prev else None))  # type: ignore[assignment]
    if not wanted:
        return {}
    existing = select_existing(conn, T(County), ["name_key"], ((k,) for k in wanted))
    rows = [dict(name=n, name_key=k, code=c) for k, (n, c) in wanted.items() if (k,) not in existing]
    upsert(conn, T(County), rows, ["name_key"], update=[])
    # a county first seen without a code (Nezarat-4) gets it when SABA names it
    for k, (_, code) in wanted.items():
        row = existing.get((k,))
        if row and code and not row["code"]:
            conn.execute(sa.update(T(County)).where(T(County).c.id == row["id"]).values(code=code))
    found = select_existing(conn, T(County), ["name_key"], ((k,) for k in wanted))
    return {k[0]: v["id"] for k, v in found.items()}


def county_id(county_ids: dict[str, int], name: str | None) -> int | None:
    """The id :func:`ensure_counties` gave the county of this (canonical) name; None for none."""
    return county_ids.get(text_key(name) or "") if name else None
