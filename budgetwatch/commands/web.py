"""Commands of the web console: `web` serves it, `users add|passwd|disable|enable|list` manage who
may sign in. Passwords are read with a hidden prompt, or from standard input when it is not a
terminal (one line), never from an argument: a command line is visible to every user of the machine
and kept in shell histories."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from budgetwatch.app import UserError, app, can_listen, console, context, option_values, terminal_text
from foundation.vocabulary import GROUPS
from store.users import ROLES, ConsoleUserError, list_users

users_app = typer.Typer(help="Users of the web console: add, passwd, disable, enable, list.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@app.command("web")
def web_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    https_only: bool = typer.Option(False, "--https-only",
                                    help="Mark the session cookie Secure (when a TLS proxy stands in front)."),
) -> None:
    """Serve the web console (docs/console.md): sign in with a user of `budgetwatch users add`."""
    import uvicorn

    from web import create_app
    from web.auth import SecretError

    # before the console starts (uvicorn printed a traceback, or its error after 'console on …')
    can_listen(host, port)
    ctx = context()
    engine = ctx.writing_engine  # the console writes (acts, visits, users, runs): it may start a store
    try:
        application = create_app(engine, ctx.config, https_only=https_only)
    except SecretError as exc:
        raise UserError(str(exc)) from None
    with engine.connect() as conn:
        if not list_users(conn):
            console.print("no console users yet: add one with `budgetwatch users add NAME --role admin`",
                          markup=False)
    console.print(f"budgetwatch console on http://{host}:{port}/ (Ctrl-C stops it)", markup=False)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


def _password(confirm: bool = True) -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UserError("no password on standard input (give it as one line)")
        return line
    return typer.prompt("password", hide_input=True, confirmation_prompt=confirm)


def _checked(call):
    try:
        return call()
    except ConsoleUserError as exc:
        raise UserError(str(exc)) from None


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., metavar="NAME"),
    role: str = typer.Option(..., "--role", help=f"One of {', '.join(ROLES)}."),
    group: list[str] = typer.Option(None, "--group", help=f"Expert group(s) of an expert: {', '.join(GROUPS)}."),
    display_name: str = typer.Option("", "--name", help="The name pages show (default: NAME)."),
) -> None:
    """Add a console user; the password is asked for (or read from standard input)."""
    from web.users import create

    user = _checked(lambda: create(context().writing_engine, username, _password(), role=role, groups=option_values(group, "--group"),
                                   display_name=display_name))
    console.print(f"user {user.username} added ({user.role}{'; ' + ','.join(user.groups) if user.groups else ''})",
                  markup=False)


@users_app.command("passwd")
def users_passwd(username: str = typer.Argument(..., metavar="NAME")) -> None:
    """Set a user's password (asked for, or read from standard input)."""
    from web.users import set_password

    user = _checked(lambda: set_password(context().engine, username, _password()))
    console.print(f"password of {user.username} changed", markup=False)


@users_app.command("disable")
def users_disable(username: str = typer.Argument(..., metavar="NAME")) -> None:
    """Disable a user: signed out at their next click, kept in the store (their acts keep a name)."""
    from web.users import set_disabled

    user = _checked(lambda: set_disabled(context().engine, username, True))
    console.print(f"user {user.username} disabled", markup=False)


@users_app.command("enable")
def users_enable(username: str = typer.Argument(..., metavar="NAME")) -> None:
    """Enable a disabled user again."""
    from web.users import set_disabled

    user = _checked(lambda: set_disabled(context().engine, username, False))
    console.print(f"user {user.username} enabled", markup=False)


@users_app.command("list")
def users_list() -> None:
    """The console's users, their roles and groups."""
    with context().engine.connect() as conn:
        users = list_users(conn)
    table = Table(header_style="bold")
    for name in ("user", "name", "role", "groups", "state"):
        table.add_column(name)
    for u in users:
        table.add_row(terminal_text(u.username), terminal_text(u.display_name), u.role, ",".join(u.groups) or "-",
                      "disabled" if u.disabled else "active")
    console.print(table)
