"""Who is responsible for what: an expert's groups and the routing of agencies give their scope.

An agency belongs to the group ``routing.agencies`` names for its code, else to ``routing.default``
(reconcile.deviations.group_of is the same reading, for views). An expert receives the deviations
of the agencies of every group they belong to; an expert of the consolidation group also receives
every critical deviation of every agency, besides the agencies routed to consolidation.
"""

from __future__ import annotations

from alerts.settings import Expert
from reconcile.settings import RoutingConfig
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
