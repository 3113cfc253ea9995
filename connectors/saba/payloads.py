"""The reading layer of SABA: JSON bodies in, structurally checked dicts out (saba.md §1–5).

This is the only module that knows the API's field names and types. It parses a body (floats as
``Decimal``, so ``9100.5`` stays exactly that), checks the envelope and every item against the
contracted shape, and sorts items into good ones and malformed ones. Values (codes, dates, status
words, chapter numbers) are ``canonical.py``'s business.

Drift or a bad item? The contract (§5) names both without a line between them; the rule used:

* **Drift** — :class:`~connectors.errors.LayoutChanged` naming the endpoint and the field, nothing of
  the answer is used: the body is not JSON; the envelope is not an object, lacks ``items`` or
  another contracted envelope field, or one of them has the wrong type; or a required field is
  absent from *every* object of a non-empty answer that could hold it (``agency.code`` missing in
  all agreements, ``credits[].spent`` missing in every credit entry). A renamed or dropped field
  looks like that.
* **Malformed item** — an item is set aside (the caller records a Rejection and goes on): a required
  field absent from *some* items only, a value of the wrong JSON type (a string where a number is
  due, ``null`` where the contract allows none), or, later in ``canonical.py``, a value outside its
  vocabulary (chapter not 1..7, unknown status, a date that is not a date).

A one-item answer whose only item lacks a field is therefore drift: with nothing to compare it to,
a missing key is more likely a change of the API than one bad record.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..errors import LayoutChanged

SOURCE = "saba"

TOKEN_PATH = "/api/v1/auth/token"
AGREEMENTS_PATH = "/api/v1/agreements"


def operations_path(portal_id: int) -> str:
    return f"/api/v1/agreements/{portal_id}/operations"


def performance_path(portal_id: int) -> str:
    return f"/api/v1/agreements/{portal_id}/performance"


# --- the contracted shapes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    kind: str  # "int" | "number" | "string"
    nullable: bool = False


@dataclass(frozen=True)
class Obj:
    fields: dict[str, Any]
    nullable: bool = False
    kind: str = "object"


@dataclass(frozen=True)
class ListOf:
    item: Any
    nullable: bool = False
    kind: str = "list"


INT = Scalar("int")
NUM = Scalar("number", nullable=True)  # saba.md: "numbers are JSON numbers or null"
STR = Scalar("string")
TEXT = Scalar("string", nullable=True)  # display text the records allow to be empty
DAY = Scalar("string", nullable=True)  # a Jalali date, or null while not yet set

AGREEMENT = Obj({
    "id": INT,
    "agreementNo": STR,
    "fiscalYear": INT,
    "agency": Obj({"code": STR, "name": STR}),
    "county": Obj({"code": STR, "name": STR}, nullable=True),
    "program": Obj({"code": STR, "title": TEXT}),
    "status": STR,
    "exchangedAt": DAY,
    "credits": ListOf(Obj({
        "chapter": INT, "title": TEXT, "approved": NUM, "notified": NUM, "allocated": NUM,
        "spent": NUM,
    })),
    "modifiedAt": STR,
})
AGREEMENTS_ENVELOPE = {"page": INT, "pageSize": INT, "totalCount": INT}

OPERATION = Obj({
    "code": STR, "title": TEXT, "unit": TEXT, "annualTarget": NUM,
    "quarterlyTargets": ListOf(NUM), "unitCost": NUM,
})
PERFORMANCE = Obj({
    "quarter": INT, "operationCode": STR, "quantity": NUM, "spent": NUM, "reportedAt": DAY,
    "comptroller": Obj({"status": STR, "decidedAt": DAY}), "remarks": TEXT,
})


# --- results --------------------------------------------------------------------------------------


@dataclass(slots=True)
class ItemProblem:
    """One item set aside: which field, why, and the raw value (JSON text, shortened)."""

    index: int  # 1-based position in ``items``
    item: Any
    field: str
    reason: str
    raw: str | None


@dataclass(slots=True)
class Checked:
    """An answer whose structure is as contracted: good items (index, dict) and set-aside ones."""

    endpoint: str
    envelope: dict[str, Any]
    items: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)

    @property
    def item_count(self) -> int:
        return len(self.items) + len(self.problems)


# --- checking -------------------------------------------------------------------------------------


def _layout(endpoint: str, expected: str, found: str) -> LayoutChanged:
    return LayoutChanged(SOURCE, endpoint, expected, found)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:200] + "…"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, Decimal, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object" if isinstance(value, dict) else type(value).__name__


def _fits(value: Any, spec: Any) -> bool:
    if value is None:
        return spec.nullable
    kind = spec.kind
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, list)
    return isinstance(value, dict)


class _Walk:
    """Checks one item; records which paths were present and which were missing."""

    def __init__(self) -> None:
        self.present: set[str] = set()
        self.missing: set[str] = set()
        self.first_problem: tuple[str, str, str | None] | None = None  # field, reason, raw

    def problem(self, path: str, reason: str, raw: str | None) -> None:
        if self.first_problem is None:
            self.first_problem = (path, reason, raw)

    def check(self, value: Any, spec: Any, path: str) -> None:
        if not _fits(value, spec):
            expected = spec.kind + (" or null" if spec.nullable else "")
            self.problem(path or "item", f"expected {expected}, found {_type_name(value)}",
                         _shown(value))
            return
        if value is None:
            return
        if isinstance(spec, Obj):
            for key, sub in spec.fields.items():
                sub_path = f"{path}.{key}" if path else key
                if key not in value:
                    self.missing.add(sub_path)
                    self.problem(sub_path, "field missing", None)
                else:
                    self.present.add(sub_path)
                    self.check(value[key], sub, sub_path)
        elif isinstance(spec, ListOf):
            for element in value:
                self.check(element, spec.item, f"{path}[]")


def parse_body(text: str, endpoint: str, content_type: str | None = None) -> Any:
    """A JSON body; a byte order mark before it is no drift (UTF-8 may carry one: a review of the
    contract found it read as "expected a JSON body")."""
    try:
        return json.loads(text.removeprefix("\ufeff"), parse_float=Decimal)
    except ValueError:
        found = f"{content_type or 'no content type'} body starting {text[:60]!r}"
        raise _layout(endpoint, "a JSON body", found) from None


def _check_items(body: Any, endpoint: str, spec: Obj, envelope_spec: dict[str, Any]) -> Checked:
    if not isinstance(body, dict):
        raise _layout(endpoint, "a JSON object with 'items'", f"a JSON {_type_name(body)}")
    for name, field_spec in {"items": ListOf(spec), **envelope_spec}.items():
        if name not in body:
            raise _layout(endpoint, f"field '{name}'", f"fields {sorted(body)}")
        if not _fits(body[name], field_spec):
            raise _layout(endpoint, f"'{name}' of type {field_spec.kind}",
                          f"{_type_name(body[name])} {_shown(body[name])}")
    checked = Checked(endpoint, {k: body[k] for k in envelope_spec})
    present: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    for index, item in enumerate(body["items"], start=1):
        walk = _Walk()
        walk.check(item, spec, "")
        present.update(walk.present)
        missing.update(walk.missing)
        if walk.first_problem is None:
            checked.items.append((index, item))
        else:
            checked.problems.append(ItemProblem(index, item, *walk.first_problem))
    dropped = sorted(path for path in missing if not present[path])
    if dropped:
        raise _layout(endpoint, f"field '{dropped[0]}' in the items",
                      f"no item with '{dropped[0]}'" + (
                          f" (also missing everywhere: {', '.join(dropped[1:])})"
                          if len(dropped) > 1 else ""))
    return checked


def read_agreements(body: Any, endpoint: str = "GET " + AGREEMENTS_PATH) -> Checked:
    return _check_items(body, endpoint, AGREEMENT, AGREEMENTS_ENVELOPE)


def read_operations(body: Any, endpoint: str) -> Checked:
    return _check_items(body, endpoint, OPERATION, {})


def read_performance(body: Any, endpoint: str) -> Checked:
    return _check_items(body, endpoint, PERFORMANCE, {})


def read_token(body: Any, endpoint: str = "POST " + TOKEN_PATH) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) \
            or not body["access_token"]:
        found = f"fields {sorted(body)}" if isinstance(body, dict) else _type_name(body)
        raise _layout(endpoint, "field 'access_token' (string)", found)
    return body["access_token"]


def error_code(text: str) -> str | None:
    """The ``error`` of an error body such as ``{"error": "token_expired"}``, if there is one."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None
