"""Who may do what in the console (issue 16).

- an **expert** sees everything and acts (acknowledge, dismiss, field visits) only on the agencies
  of their expert groups, as config.yaml's ``routing`` assigns agencies to groups;
- the **consolidation** group acts everywhere and runs reconciliations;
- an **admin** manages users (and sees everything, but acts on no deviation: a user account for
  running the console is not a budget expert).

Every check here is pure: the routes ask, and refuse with 403 and a Persian sentence when it says no.
"""

from __future__ import annotations

from reconcile.deviations import group_of
from reconcile.settings import RoutingConfig
from store.users import User

ROLE_NAMES = {"expert": "کارشناس بودجه", "consolidation": "گروه تلفیق بودجه", "admin": "مدیر سامانه"}


def can_act_on(user: User, agency_code: str | None, routing: RoutingConfig) -> bool:
    """May `user` acknowledge, dismiss or record visits for what belongs to this agency?"""
    if user.role == "consolidation":
        return True
    if user.role == "expert":
        return group_of(agency_code, routing) in user.groups
    return False


def can_reconcile(user: User) -> bool:
    return user.role == "consolidation"


def can_manage_users(user: User) -> bool:
    return user.role == "admin"


def can_record_visits(user: User) -> bool:
    return user.role in ("expert", "consolidation")


def group_agencies(group: str, routing: RoutingConfig) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """A group as agency codes for store.console.DeviationQuery: (its agencies, None), or for the
    routing's default group (None, the agencies routed elsewhere)."""
    if group == routing.default:
        return None, tuple(sorted(code for code, g in routing.agencies.items() if g != group))
    return tuple(sorted(code for code, g in routing.agencies.items() if g == group)), None
