"""Who is responsible for what: an expert's groups and the routing of agencies give their scope.

An agency belongs to the group ``routing.agencies`` names for its code, else to ``routing.default``
(reconcile.deviations.group_of is the same reading, for views). An expert receives the deviations
of the agencies of every group they belong to; an expert of the consolidation group also receives
every critical deviation of every agency, besides the agencies routed to consolidation.

A group routing gives agencies to and no expert belongs to (alerts.settings.uncovered_groups) leaves
its agencies' deviations to no one's mail: :func:`coverage` counts them, and names the codes of
``routing.agencies`` that no agency in the store has (a typo routes nothing: `0305` for `305`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from alerts.settings import Expert, uncovered_groups
from reconcile.settings import RoutingConfig
from store import alerts as store_alerts
from store import reporting as store_reporting
from store.alerts import Scope

CONSOLIDATION = "consolidation"


def scope_of(expert: Expert, routing: RoutingConfig) -> Scope:
    groups = set(expert.groups)
    return Scope(
        agencies=frozenset(code for code, group in routing.agencies.items() if group in groups),
        routed=frozenset(routing.agencies),
        default=routing.default in groups,
        every_critical=CONSOLIDATION in groups,
    )


def find_expert(experts: list[Expert], address: str) -> Expert | None:
    wanted = address.strip().lower()
    return next((e for e in experts if e.address == wanted), None)


# an address no expert has: told nothing, so every open deviation of a scope is news to it
_NO_ONE = ""


@dataclass(frozen=True)
class Coverage:
    """Whom the routing's groups reach: ``uncovered`` groups no expert belongs to; ``unreached``, the
    open deviations at or above ``alerts.min_severity`` that therefore reach no one's mail (a critical
    one still reaches an expert of consolidation); ``unknown_codes``, codes of ``routing.agencies``
    no agency in the store has (none when the store holds no agency yet)."""

    uncovered: tuple[str, ...]
    unreached: int
    unknown_codes: tuple[str, ...]

    def unreached_line(self) -> str | None:
        """What `alerts send` and `alerts preview` say of it, or None when every group has an expert or
        no open deviation of a group without one is to be told (a trial: «0 open deviations reached
        no one»; the WARNING naming the group without an expert says the rest)."""
        if not self.uncovered or not self.unreached:
            return None
        groups = ", ".join(repr(g) for g in self.uncovered)
        count = "1 open deviation" if self.unreached == 1 else f"{self.unreached} open deviations"
        return (f"{count} reached no one: no expert in experts covers group{'s' if len(self.uncovered) > 1 else ''} "
                f"{groups} (they stay in the console and reports)")

    def unknown_codes_line(self) -> str | None:
        if not self.unknown_codes:
            return None
        codes = ", ".join(self.unknown_codes)
        return (f"routing.agencies: no agency in the store has the code{'s' if len(self.unknown_codes) > 1 else ''} "
                f"{codes} (mistyped? codes are as the portals write them, e.g. 305, 032): it routes nothing, "
                "and the agency meant stays in routing.default's group")


def coverage(conn: Connection, experts: Sequence[Expert], routing: RoutingConfig, min_severity: str) -> Coverage:
    """See :class:`Coverage`; read in `conn`, nothing written."""
    groups = uncovered_groups(experts, routing)
    unreached = 0
    if groups:
        nobody = Scope(agencies=frozenset(code for code, group in routing.agencies.items() if group in groups),
                       routed=frozenset(routing.agencies), default=routing.default in groups, every_critical=False)
        critical_told = any(CONSOLIDATION in expert.groups for expert in experts)
        unreached = sum(1 for row in store_alerts.news_for(conn, _NO_ONE, nobody, min_severity)
                        if not (critical_told and row.severity == "critical"))
    unknown: tuple[str, ...] = ()
    if routing.agencies:
        known = store_reporting.agencies(conn)
        if known:  # an empty store (no sync yet) knows no code: nothing to say of the routing
            unknown = tuple(sorted(code for code in routing.agencies if code not in known))
    return Coverage(tuple(groups), unreached, unknown)
