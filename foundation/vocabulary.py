"""One definition of the domain's small vocabularies: sources, severities, statuses, groups, kinds.

Codes are what the store, the configuration and machine formats hold; the Persian names people
read are in ``foundation.present``.
"""

from __future__ import annotations

from typing import Literal

Source = Literal["nezarat4", "saba"]
SOURCES: tuple[Source, ...] = ("nezarat4", "saba")

# the Jalali fiscal years a portal can hold: a source's `years` in config.yaml, every command's `--year`,
# the console's year filters (one range everywhere: `--year 1300` was refused by sync, listed nothing
# from `deviations list`, and ran a reconciliation of nothing from the console)
FIRST_YEAR, LAST_YEAR = 1390, 1500

Kind = Literal["capital", "expense"]
KINDS: tuple[Kind, ...] = ("capital", "expense")

Severity = Literal["minor", "major", "critical"]
SEVERITIES: tuple[Severity, ...] = ("minor", "major", "critical")  # least to worst
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

DeviationStatus = Literal["open", "resolved", "acknowledged", "dismissed"]
DEVIATION_STATUSES: tuple[DeviationStatus, ...] = ("open", "resolved", "acknowledged", "dismissed")

# the expert groups of the Budget Deputy; the consolidation group reviews everything
Group = Literal["social", "infrastructure", "production", "consolidation"]
GROUPS: tuple[Group, ...] = ("social", "infrastructure", "production", "consolidation")
