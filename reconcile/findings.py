"""What a rule says of a subject: a `Finding`, with the numbers it was judged on.

A finding is the output of one rule for one subject (a project code, an agreement number, or an
agreement number with an operation code), one fiscal year and, where the catalogue records one, one
quarter. It carries the figures it was judged on (planned, actual, the measure compared with the
threshold, and every intermediate figure in ``numbers``), the Persian sentence a budget expert
reads, and where the evidence is (the stored row and the sync run that last changed it).

Arithmetic follows reconciliation-rules.md "Calendar": figures are Decimal, a gap, share or ratio
is computed unrounded, then rounded to 4 places half away from zero (:func:`round4`) before it is
compared with a threshold or put into a severity band.
"""

from __future__ import annotations

import decimal
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from foundation.vocabulary import SEVERITIES, SEVERITY_RANK, Kind, Severity

__all__ = ["EXACT", "SEVERITIES", "SEVERITY_RANK", "ZERO", "Finding", "Kind", "Severity", "divide", "figure",
           "round4", "text", "threshold"]

ZERO = Decimal(0)
_FOUR_PLACES = Decimal("0.0001")
# Wide enough that no quotient of store figures (20 digits, 4 or 6 places) is rounded before round4.
EXACT = decimal.Context(prec=60, rounding=ROUND_HALF_UP)


def _encoder(*, sort_keys: bool, default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """json.dumps(value, ensure_ascii=False, sort_keys=…, default=…), the same text, made quicker.

    A run encodes every finding's figures twice (fingerprint and store). json.dumps builds an encoder
    per call, and JSONEncoder.encode builds its C encoder per call too (half of the 1.6 µs an encode
    takes): the C encoder is built once here, without the check for circular structures (a
    finding's figures are a fresh tree of dicts, lists and strings). Python without the C
    accelerator falls back to JSONEncoder."""
    if c_make_encoder is None:  # pragma: no cover - CPython always has it
        return json.JSONEncoder(sort_keys=sort_keys, ensure_ascii=False, default=default).encode
    encode = c_make_encoder(None, default, encode_basestring, None, ": ", ", ", sort_keys, False, True)
    return lambda value: "".join(encode(value, 0))


def _json_types_only(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_SORTED = _encoder(sort_keys=True, default=str)  # the fingerprint's: anything else as its text
_PLAIN = _encoder(sort_keys=False, default=_json_types_only)  # what the store keeps: JSON types only


_quantize = EXACT.quantize  # the context's rounding: ROUND_HALF_UP, i.e. half away from zero
divide = EXACT.divide  # an unrounded quotient (60 significant digits): round it with round4 before comparing


def round4(value: Decimal) -> Decimal:
    """`value` rounded to 4 decimal places, half away from zero (0.849996 -> 0.8500, -0.00005 -> -0.0001)."""
    return _quantize(value, _FOUR_PLACES)


def figure(value: Decimal | None) -> Decimal:
    """A figure the portal left empty counts as 0 (in sums and stage comparisons)."""
    return ZERO if value is None else value


def threshold(value: float | int | Decimal) -> Decimal:
    """A configured threshold as the Decimal its text says (0.85 is exactly 0.85, not a float)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def text(value: Decimal | int | None) -> str | None:
    """A figure as exact plain text for ``numbers`` (JSON has no decimal type): '45', '0.3', '-2.5'.

    Canonical (no trailing zeros), so the same figure reads the same from either database.
    """
    if value.__class__ is Decimal:
        if not value:
            return "0"
        # the plain text with its trailing zeros cut, where str() writes no exponent and no more
        # digits than normalize() keeps (the context's 28; it rounds longer figures): the same text
        # as format(value.normalize(), "f") in ~60 % of its time (a run writes ~7 figures a finding)
        shown = str(value)
        if "E" in shown or len(shown) > 28:
            return format(value.normalize(), "f")
        return shown.rstrip("0").rstrip(".") if "." in shown else shown
    if value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):  # a subclass
        return text(Decimal(value))
    raise TypeError(f"not a figure: {value!r}")


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's verdict on one subject, fiscal year and quarter (None: the rule records none)."""

    rule: str
    kind: Kind
    subject: str  # ASCII digits: project code | agreement no | agreement no/operation code
    fiscal_year: int
    quarter: int | None
    severity: Severity
    planned: Decimal | None
    actual: Decimal | None
    measure: Decimal | None  # the rounded gap, share difference, ratio, excess or years compared
    message: str  # Persian sentence, Persian digits, Jalali dates
    numbers: dict[str, Any] = field(default_factory=dict)  # every figure used, as exact text
    evidence_table: str | None = None  # progress_report, project_year, operation_performance, ...
    evidence_id: int | None = None
    sync_run_id: int | None = None  # the sync run that last changed the evidence
    agency_code: str | None = None
    county_id: int | None = None
    county: str | None = None

    @property
    def fingerprint(self) -> str:
        """A digest of everything a deviation stores of this finding (figures, sentence, evidence).

        A re-run compares it with the stored deviation's, instead of reading the stored figures
        back: equal means nothing changed. Figures enter in canonical text (:func:`text`), so the
        same numbers give the same digest on either database.
        """
        return self.digests()[0]

    def digests(self) -> tuple[str, str]:
        """(fingerprint, ``numbers`` as the JSON text the store keeps), made together as a run stages
        the finding (reconcile/lifecycle.py). The stored text keeps
        the rule's order of the figures (``deviations show`` lists them so); the fingerprint's is sorted."""
        content = (f"{self.severity}\x1f{text(self.planned)}\x1f{text(self.actual)}\x1f{text(self.measure)}\x1f"
                   f"{_SORTED(self.numbers)}\x1f{self.message}\x1f{self.agency_code}\x1f{self.county_id}\x1f"
                   f"{self.sync_run_id}\x1f{self.evidence_table}\x1f{self.evidence_id}")
        stored = _PLAIN(self.numbers)
        return hashlib.blake2b(content.encode("utf-8"), digest_size=16).hexdigest(), stored

    @property
    def key(self) -> tuple[str, str, str, int, int]:
        """The deviation identity: (kind, rule, subject, fiscal year, quarter or 0)."""
        return (self.kind, self.rule, self.subject, self.fiscal_year, self.quarter or 0)
