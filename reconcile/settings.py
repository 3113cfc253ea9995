"""The reconciliation's section of config.yaml: the as-of day, deadlines, each rule's
thresholds (``reconcile.rules.<id>``), and the routing of agencies to expert groups.

The rules' sections are built from the rules' own ``Limits`` (reconcile/rules/*.py), so a
threshold's key and default are written once; an unknown key is still an error naming its path.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator

from foundation.settings import Strict
from foundation.vocabulary import Group
from reconcile.rules import RULE_IDS, RULES


class _Rule(Strict):
    enabled: bool = True


def _rule_model(rule_id: str) -> type[Strict]:
    """The settings of ``reconcile.rules.<rule_id>``: ``enabled`` and the fields of the rule's Limits.

    The Limits of reconcile/rules/*.py are the one source of each threshold's name and default; a
    rule id judged in both families (credit_inconsistency) has one section, so its families' Limits
    must agree. Thresholds are written as plain numbers in config.yaml (Decimal fields are floats
    here; Rule.limits_from turns them back into exact Decimals), whole years stay integers.
    """
    fields: dict[str, tuple[type, Any]] = {}
    for rule in RULES:
        if rule.id != rule_id:
            continue
        for f in dataclasses.fields(rule.Limits):
            kind = float if isinstance(f.default, Decimal) else type(f.default)
            default = float(f.default) if isinstance(f.default, Decimal) else f.default
            if fields.setdefault(f.name, (kind, default)) != (kind, default):
                raise TypeError(f"rule {rule_id}: the families' Limits disagree on {f.name}")
    name = "".join(part.title() for part in rule_id.split("_")) + "Rule"
    ordered = _ordered(fields)
    # a threshold is a finite number: NaN compares false to everything, so `major: .nan` passed the
    # order check below and no finding was ever that severe (a trial); booleans are refused where
    # the whole configuration is read (budgetwatch.config)
    typed = {n: (Annotated[float, Field(allow_inf_nan=False)] if kind is float else kind, default)
             for n, (kind, default) in fields.items()}

    def keep_order(self: Any) -> Any:
        values = [getattr(self, f) for f in ordered]
        rising = ordered and fields[ordered[-1]][1] > fields[ordered[0]][1]
        for (a, x), (b, y) in zip(zip(ordered, values), zip(ordered[1:], values[1:])):
            if x > y if rising else x < y:  # equal is allowed: the lower severity is then never given
                raise ValueError(f"{a} {x:g} and {b} {y:g} are inverted: the thresholds go "
                                 f"{' ≤ '.join(ordered) if rising else ' ≥ '.join(ordered)}, as their defaults do")
        return self

    return create_model(name, __base__=_Rule, __module__=__name__,
                        __validators__={"_keep_order": model_validator(mode="after")(keep_order)}, **typed)


def _ordered(fields: dict[str, tuple[type, Any]]) -> list[str]:
    """A rule's severity thresholds in the order their defaults rise or fall (one direction), or none."""
    names = [n for n, (kind, _) in fields.items() if kind in (int, float)]
    defaults = [fields[n][1] for n in names]
    steps = {b > a for a, b in zip(defaults, defaults[1:])}
    return names if len(names) > 1 and len(steps) == 1 else []


# reconcile.rules.<id>: one section per rule id, in the catalogue's order
_SECTIONS = {rule_id: _rule_model(rule_id) for rule_id in RULE_IDS}
RulesConfig = create_model("RulesConfig", __base__=Strict, __module__=__name__,
                           **{rule_id: (model, Field(default_factory=model)) for rule_id, model in _SECTIONS.items()})


class ReconcileConfig(Strict):
    as_of: date | None = None  # None: today in Asia/Tehran
    report_due_days: int = Field(default=15, ge=0, le=120)
    approval_due_days: int = Field(default=15, ge=0, le=120)
    rules: RulesConfig = Field(default_factory=RulesConfig)

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, value: Any) -> Any:
        if isinstance(value, str):
            from foundation.jalali import parse_day

            return parse_day(value)
        return value


# the validation context under which a configuration written by a person is read
# (budgetwatch.config.parse_config): its agency codes must be codes an agency can have
AS_WRITTEN = "as_written"


class RoutingConfig(Strict):
    default: Group = "consolidation"
    agencies: dict[str, Group] = Field(default_factory=dict)  # agency code -> group

    @field_validator("agencies", mode="before")
    @classmethod
    def _codes(cls, value: Any, info: ValidationInfo) -> Any:
        """Each agency code as the portals' codes are read (foundation.persian.parse_code: Persian
        and Arabic-Indic digits in ASCII, spaces and bidi marks dropped, leading zeros kept). Codes
        that are one once read (`305` and `"305"`, `۳۰۵` and `305`) are refused, naming them: a dict
        kept the last silently (a trial). In config.yaml (:data:`AS_WRITTEN`) a code is digits, as
        every agency's is: an empty code or one that is no number (`abc`) would route nothing."""
        if not isinstance(value, dict):
            return value
        from foundation.persian import BadCode, parse_code, to_ascii_digits

        as_written = bool(info.context and info.context.get(AS_WRITTEN))
        codes: dict[str, Any] = {}
        written: dict[str, Any] = {}
        problems = []
        for key, group in value.items():
            try:
                code = parse_code(str(key), field="agency code")
            except BadCode:
                code = None
            if as_written and (code is None or not _DIGITS.fullmatch(code)):
                problems.append(f"{key!r} is not an agency code (digits, e.g. 305 or 032)")
                continue
            code = to_ascii_digits(str(key)).strip() if code is None else code
            if code in written:
                problems.append(f"{written[code]!r} and {key!r} are one agency code ({code}): give it once")
            else:
                written[code], codes[code] = key, group
        if problems:
            raise ValueError("; ".join(problems))
        return codes


_DIGITS = re.compile(r"[0-9]+")
