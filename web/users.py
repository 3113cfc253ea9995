"""Managing the console's users: add, change a password, disable; and the demo store's user.

The CLI (`budgetwatch users add|passwd|disable|list`) and the admin's page both call these, so a
password is hashed and a role or group checked in one place. Passwords arrive as arguments of
these functions only: never on a command line, never stored, logged or shown.
"""

from __future__ import annotations

import secrets

from sqlalchemy.engine import Engine

from foundation.vocabulary import GROUPS
from store.users import ROLES, ConsoleUserError, User, add_user, get_user, record_action, update_user
from web.auth import WeakPassword, hash_password

DEMO_USER = "demo"


def _groups(groups: tuple[str, ...] | list[str], role: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(g.strip() for g in groups if g.strip()))
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown:
        raise ConsoleUserError(f"group {unknown[0]!r}: use one of {', '.join(GROUPS)}", "چنین گروهی تعریف نشده است.")
    if role == "expert" and not chosen:
        raise ConsoleUserError("an expert needs at least one group (--group social, ...)",
                               "کارشناس دست‌کم یک گروه کارشناسی لازم دارد.")
    return chosen


def _hash(password: str) -> str:
    try:
        return hash_password(password)
    except WeakPassword as exc:  # too short, or blank
        raise ConsoleUserError(str(exc), exc.persian) from None


def create(engine: Engine, username: str, password: str, *, role: str, groups: tuple[str, ...] = (),
           display_name: str = "", by: str = "cli") -> User:
    if role not in ROLES:
        raise ConsoleUserError(f"role {role!r}: use one of {', '.join(ROLES)}")
    chosen = _groups(groups, role)
    with engine.begin() as conn:
        user = add_user(conn, username, display_name=display_name, role=role, groups=chosen,
                        password_hash=_hash(password))
        record_action(conn, by, "user_add", f"user {user.username}", f"role {role}; groups {','.join(chosen) or '-'}")
    return user


def set_password(engine: Engine, username: str, password: str, *, by: str = "cli") -> User:
    """A new password; every session of the user ends (store.users.update_user raises their epoch)."""
    with engine.begin() as conn:
        user = update_user(conn, username, password_hash=_hash(password))
        record_action(conn, by, "user_password", f"user {user.username}")
    return user


def set_disabled(engine: Engine, username: str, disabled: bool = True, *, by: str = "cli") -> User:
    """Disable (every session of the user ends, and stays ended once enabled again) or enable."""
    with engine.begin() as conn:
        user = update_user(conn, username, disabled=disabled)
        record_action(conn, by, "user_disable" if disabled else "user_enable", f"user {user.username}")
    return user


def demo_user(engine: Engine) -> tuple[str, str]:
    """A consolidation user on the DEMO store with a new random password: (name, password).

    Each call gives the user a fresh password (the demo prints it once); meant for the demo's own
    store only, never a production one.
    """
    password = secrets.token_urlsafe(12)
    with engine.connect() as conn:
        exists = get_user(conn, DEMO_USER) is not None
    if exists:
        with engine.begin() as conn:
            update_user(conn, DEMO_USER, password_hash=_hash(password), disabled=False, role="consolidation")
    else:
        create(engine, DEMO_USER, password, role="consolidation", display_name="کاربر نمایشی", by="demo")
    return DEMO_USER, password
