"""The web console's users and the record of what they did: tables and queries.

A user has a role (``expert``: sees everything, acts on the agencies of their expert groups;
``consolidation``: acts everywhere and runs reconciliations; ``admin``: manages users), a list of
expert groups (an expert's only: the other roles have none and are refused any, on the users page
and in `budgetwatch users add` alike) and an argon2 hash of their password (hashing happens in
web/auth.py: the store only keeps the hash and never sees a password). Users are disabled, never
deleted, so the names in deviation events and the action log keep meaning someone.

``console_action`` is the console's log of acts: who did what to which object and when (signing in,
acknowledging, dismissing, recording visits, starting reconciliations, managing users). Deviation
events carry ``by`` as well; this log also covers what has no event of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from foundation.persian import canonical_letters
from foundation.present import number
from store.models import Column, UTCDateTime, _when, utcnow

ROLES = ("expert", "consolidation", "admin")
# characters of a display name (5,000 pushed the users page's controls off the screen: a trial)
DISPLAY_NAME_MAX = 100
# the one role whose acts are limited to expert groups; the others have none (web/permissions.py)
GROUPED_ROLES = ("expert",)


class ConsoleUser(SQLModel, table=True):
    """A person who signs in to the web console."""

    __tablename__ = "console_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)  # the sign-in name: canonical_username's form
    display_name: str
    role: str = Field(max_length=16)  # expert | consolidation | admin
    groups: str = Field(default="")  # expert groups, comma-separated: "social,production"
    password_hash: str  # argon2 (web/auth.py); never a password
    disabled: bool = False
    # raised by signing out, a new password and disabling: a session signed in at another epoch has
    # ended (web/app.py); migration 0013
    session_epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime | None = _when()


class ConsoleAction(SQLModel, table=True):
    """One act of a console user: who, what, on which object, when."""

    __tablename__ = "console_action"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    username: str = Field(max_length=64, index=True)
    action: str = Field(max_length=32)  # login | acknowledge | dismiss | visit | visits_file | reconcile | user_*
    target: str | None = None  # "deviation 12", "1305012007-003", "user ali"
    detail: str | None = None


users = ConsoleUser.__table__
actions = ConsoleAction.__table__


class ConsoleUserError(Exception):
    """A user cannot be added or changed as asked; the message says why, for the terminal in English
    and, as ``persian``, for the console's users page."""

    def __init__(self, message: str, persian: str | None = None) -> None:
        super().__init__(message)
        self.persian = persian or message


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    groups: tuple[str, ...]
    disabled: bool
    password_hash: str
    session_epoch: int = 0  # a session of another epoch has ended (end_sessions)

    @classmethod
    def from_row(cls, row: sa.Row) -> User:
        # a role without groups has none, whatever a row stored before they were refused says
        groups = tuple(g for g in (row.groups or "").split(",") if g) if row.role in GROUPED_ROLES else ()
        return cls(row.id, row.username, row.display_name, row.role, groups, bool(row.disabled), row.password_hash,
                   int(row.session_epoch or 0))


def canonical_username(username: str | None) -> str:
    """A sign-in name as the store keeps it: lower case, its Persian letters as the project writes
    them (ي ك typed on an Arabic keyboard layout are ی ک: foundation.persian.canonical_letters).
    Every way in, creation and sign-in alike, looks a name up in this form; an ASCII name is only
    lower-cased."""
    return canonical_letters((username or "").strip()).strip().lower()


def _name(username: str) -> str:
    name = canonical_username(username)
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise ConsoleUserError(f"user name {username!r}: 1 to 64 characters without spaces",
                               "نام کاربری باید ۱ تا ۶۴ نویسه و بدون فاصله باشد.")
    return name


def _new_name(username: str) -> str:
    """A new user's name: letters, digits and . _ - @ only, a letter or digit among them (a '/',
    or a name '..', made the console's address of the user's page another page: the user could not
    be disabled there)."""
    name = _name(username)
    if not all(c.isalnum() or c in "._-@" for c in name) or not any(c.isalnum() for c in name):
        raise ConsoleUserError(f"user name {username!r}: letters, digits and . _ - @ only",
                               "نام کاربری فقط از حرف، رقم و نشانه‌های . _ - @ ساخته شود.")
    return name


def _check_groups(role: str, groups: tuple[str, ...] | list[str] | str) -> None:
    """Refuse expert groups for a role that has none: an admin or the consolidation group given
    `--group social` (or its box ticked on the users page) was stored and shown with it, though
    the group meant nothing (a trial)."""
    named = groups.split(",") if isinstance(groups, str) else groups
    if role not in GROUPED_ROLES and any(g.strip() for g in named):
        raise ConsoleUserError(f"role {role!r} has no expert groups: give --group to an expert only",
                               "گروه کارشناسی فقط برای نقش کارشناس بودجه است؛ برای این نقش گروهی برنگزینید.")


def get_user(conn: Connection, username: str) -> User | None:
    """The user of this name, however its Persian letters were typed (canonical_username). A name
    stored exactly as typed comes first: two users stored before names were canonicalised (علي
    and علی) stay two users, neither answering for the other."""
    typed = (username or "").strip().lower()
    name = canonical_username(username)
    row = conn.execute(sa.select(users).where(users.c.username == typed)).first()
    if row is None and name != typed:
        row = conn.execute(sa.select(users).where(users.c.username == name)).first()
    if row is None and not name.isascii():
        # a name stored before names were canonicalised (علي, with an Arabic yeh): found by its
        # canonical form too; a console has tens of users, and a miss is a failed sign-in
        row = next((r for r in conn.execute(sa.select(users).order_by(users.c.id))
                    if canonical_username(r.username) == name), None)
    return User.from_row(row) if row else None


def display_names(conn: Connection, usernames: set[str]) -> dict[str, str]:
    """The console's users among ``usernames``, by their display names (a name given with the CLI's
    ``--by`` is nobody's login and is left out)."""
    wanted = {n.strip().lower() for n in usernames if n}
    if not wanted:
        return {}
    rows = conn.execute(sa.select(users.c.username, users.c.display_name).where(users.c.username.in_(wanted)))
    return {r.username: r.display_name for r in rows if r.display_name}


def _display_name(display_name: str) -> str:
    shown = (display_name or "").strip()
    if len(shown) > DISPLAY_NAME_MAX:
        raise ConsoleUserError(f"a display name of at most {DISPLAY_NAME_MAX} characters, please (this one has "
                               f"{len(shown)})", f"نام حداکثر {number(DISPLAY_NAME_MAX)} نویسه باشد؛ این یکی "
                               f"{number(len(shown))} نویسه است.")
    return shown


def list_users(conn: Connection) -> list[User]:
    return [User.from_row(r) for r in conn.execute(sa.select(users).order_by(users.c.username))]


def add_user(conn: Connection, username: str, *, display_name: str, role: str, groups: tuple[str, ...],
             password_hash: str, now: datetime | None = None) -> User:
    name = _new_name(username)
    if role not in ROLES:
        raise ConsoleUserError(f"role {role!r}: use one of {', '.join(ROLES)}", "چنین نقشی تعریف نشده است.")
    _check_groups(role, groups)
    if get_user(conn, username) is not None:  # in any spelling of its letters
        raise ConsoleUserError(f"user {name!r} exists already (use `users passwd` to change the password)",
                               f"کاربر «{name}» پیش‌تر افزوده شده است؛ برای عوض کردن گذرواژه‌اش، گذرواژهٔ تازه بدهید.")
    now = now or utcnow()
    conn.execute(sa.insert(users).values(username=name, display_name=_display_name(display_name) or name, role=role,
                                         groups=",".join(groups), password_hash=password_hash, disabled=False,
                                         created_at=now, updated_at=now))
    user = get_user(conn, name)
    assert user is not None
    return user


def update_user(conn: Connection, username: str, *, now: datetime | None = None, **values: object) -> User:
    """Change a user's password_hash, disabled flag, role, groups or display name. A new password
    hash, or disabling, ends every session of the user (their ``session_epoch`` is raised). A role
    without groups given to a user drops their groups; groups given to such a role are refused."""
    name = _name(username)
    allowed = {"password_hash", "disabled", "role", "groups", "display_name"}
    unknown = set(values) - allowed
    if unknown:
        raise ConsoleUserError(f"cannot change {', '.join(sorted(unknown))} of a user")
    if "display_name" in values:
        values["display_name"] = _display_name(str(values["display_name"]))
    if "groups" in values and not isinstance(values["groups"], str):
        values["groups"] = ",".join(values["groups"])  # type: ignore[arg-type]
    found = get_user(conn, username)  # a name stored before names were canonicalised, too
    if found is None:
        raise ConsoleUserError(f"no user {name!r}", f"کاربری به نام «{name}» نیست.")
    role = str(values.get("role", found.role))
    if "groups" in values:
        _check_groups(role, values["groups"])  # type: ignore[arg-type]
    elif role not in GROUPED_ROLES:
        values["groups"] = ""
    if "password_hash" in values or values.get("disabled"):
        values["session_epoch"] = users.c.session_epoch + 1
    conn.execute(sa.update(users).where(users.c.id == found.id).values(updated_at=now or utcnow(), **values))
    user = get_user(conn, found.username)
    assert user is not None
    return user


def end_sessions(conn: Connection, username: str) -> None:
    """End every session of the user (signing out): the console refuses a session whose epoch is not
    the user's. A user not found (renamed, say) has no session to end."""
    found = get_user(conn, username)
    if found is not None:
        conn.execute(sa.update(users).where(users.c.id == found.id)
                     .values(session_epoch=users.c.session_epoch + 1))


def record_action(conn: Connection, username: str, action: str, target: str | None = None,
                  detail: str | None = None, *, now: datetime | None = None) -> None:
    conn.execute(sa.insert(actions).values(at=now or utcnow(), username=username, action=action, target=target,
                                           detail=detail))


def recent_actions(conn: Connection, limit: int = 50, username: str | None = None) -> list[sa.Row]:
    query = sa.select(actions).order_by(actions.c.id.desc()).limit(limit)
    if username:
        query = query.where(actions.c.username == username)
    return list(conn.execute(query))
