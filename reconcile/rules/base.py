"""What a rule is: identity, rationale, the unit it judges, its thresholds, one pure check.

A rule (after prozorro-risks' indicators) is a small class:

- ``id`` and ``kind`` — the catalogue's rule id and its family (capital | expense);
- ``rationale`` — one sentence saying why a budget expert cares;
- ``unit`` — what one call judges: a project's year, an agreement, or an operation of one;
- ``Limits`` — a frozen dataclass of its thresholds, named as the keys of
  ``reconcile.rules.<id>`` in config.yaml, with the catalogue's defaults;
- ``check(facts, as_of, limits)`` — a pure function: ``None`` when the rule has nothing to judge
  in these facts (they are not counted as checked), else the list of findings (empty: checked and
  clean).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from reconcile import wording as w
from reconcile.facts import AsOf, CreditStages
from reconcile.findings import Finding, Kind, round4, text, threshold


@dataclass(frozen=True)
class NoLimits:
    """For rules whose only settings are the run's deadlines (report_due_days, approval_due_days)."""


class Rule(ABC):
    id: ClassVar[str]
    kind: ClassVar[Kind]
    unit: ClassVar[str]  # "project_year" | "agreement" | "operation"
    rationale: ClassVar[str]
    Limits: ClassVar[type] = NoLimits

    @property
    def name(self) -> str:
        """'capital.progress_lag': unique across both families."""
        return f"{self.kind}.{self.id}"

    @classmethod
    def limits_from(cls, settings: Any) -> Any:
        """The Limits of this rule from its config.yaml section (same key names)."""
        values = {}
        for f in dataclasses.fields(cls.Limits):
            raw = getattr(settings, f.name)
            values[f.name] = threshold(raw) if isinstance(f.default, Decimal) else raw
        return cls.Limits(**values)

    @abstractmethod
    def check(self, facts: Any, as_of: AsOf, limits: Any) -> list[Finding] | None:
        """The findings of this rule on `facts` as of `as_of`; None when there is nothing to judge."""


# --- money stages, shared by both families' credit_inconsistency -------------------------------


@dataclass(frozen=True)
class CreditLimits:
    """credit_inconsistency's threshold, one for both families (one ``reconcile.rules`` section)."""

    tolerance: Decimal = Decimal("0.5")  # million rials by which one stage may exceed the one before it


STAGE_NAMES = {"approved": "مصوب", "notified": "ابلاغی", "allocated": "تخصیص"}
# later stage -> the stage it must not exceed (catalogue: used > allocated > notified > approved)
_STAGE_PAIRS = (("used", "allocated"), ("allocated", "notified"), ("notified", "approved"))


@dataclass(frozen=True, slots=True)
class StageBreak:
    row: CreditStages
    later: str  # used | allocated | notified
    earlier: str  # allocated | notified | approved
    later_value: Decimal
    earlier_value: Decimal
    excess: Decimal  # later − earlier, rounded to 4 places


_STAGE_INDEX = {"approved": 1, "notified": 2, "allocated": 3, "used": 4}  # positions in CreditStages
_PAIRS = tuple((later, earlier, _STAGE_INDEX[later], _STAGE_INDEX[earlier]) for later, earlier in _STAGE_PAIRS)
_ZERO = Decimal(0)


def stage_breaks(rows: tuple[CreditStages, ...], tolerance: Decimal) -> list[StageBreak]:
    """Every pair of stages where the later one exceeds the earlier by more than `tolerance`.

    Empty amounts count as 0 (the catalogue's rule for figures the portal left empty).
    """
    found = []
    for row in rows:
        for later, earlier, i, j in _PAIRS:
            later_value = row[i] if row[i] is not None else _ZERO
            earlier_value = row[j] if row[j] is not None else _ZERO
            difference = later_value - earlier_value
            if difference <= 0 <= tolerance:  # the usual case: rounding cannot make it exceed
                continue
            excess = round4(difference)
            if excess > tolerance:
                found.append(StageBreak(row, later, earlier, later_value, earlier_value, excess))
    return found


def worst(breaks: list[StageBreak]) -> StageBreak:
    """The largest excess; on a tie the first row in the portal's order."""
    return max(breaks, key=lambda b: b.excess)  # max keeps the first of equal keys


def breaks_numbers(breaks: list[StageBreak]) -> list[dict[str, str | None]]:
    return [
        {
            "row": b.row.label,
            "stage": b.later,
            "exceeds": b.earlier,
            "value": text(b.later_value),
            "limit": text(b.earlier_value),
            "excess": text(b.excess),
        }
        for b in breaks
    ]


def describe_breaks(breaks: list[StageBreak], stage_words: dict[str, str], row_word: str
                    ) -> tuple[str, dict[str, Any]]:
    """credit_inconsistency's sentence after the subject's name, and the figures of its finding
    (planned, actual, measure, numbers, evidence), for a subject's `breaks`: the worst is told.
    `row_word` comes before the row's label ('ردیف ' for a funding source row; '' for a chapter)."""
    b = worst(breaks)
    more = f" (و {w.number(len(breaks) - 1)} ناسازگاری دیگر)" if len(breaks) > 1 else ""
    sentence = (f"ارقام اعتبار ناسازگار دارد: در {row_word}«{b.row.label}» "
                f"{stage_words[b.later]} ({w.amount(b.later_value)}) از {stage_words[b.earlier]} "
                f"({w.amount(b.earlier_value)}) بیشتر است{more}")
    return sentence, {"planned": b.earlier_value, "actual": b.later_value, "measure": b.excess,
                      "numbers": {"breaks": breaks_numbers(breaks)},
                      "evidence": (b.row.evidence_table, b.row.evidence_id)}
