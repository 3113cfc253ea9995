"""Users (admins only): who may sign in, with which role and groups; add, reset a password, disable.
Also the console's recent acts, so an admin sees who did what."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from foundation.vocabulary import GROUPS
from store.users import DISPLAY_NAME_MAX, ROLES, ConsoleUserError, display_names, list_users, recent_actions
from web import users as manage
from web import words
from web.common import Refused, checked_form, console, flash, redirect, render, user_of
from web.permissions import can_manage_users

router = APIRouter()


def _admin(request: Request) -> None:
    if not can_manage_users(user_of(request)):
        raise Refused(403, "مدیریت کاربران با مدیر سامانه است.")


@router.get("/users")
def users_page(request: Request):
    _admin(request)
    with console(request).engine.connect() as conn:
        users = list_users(conn)
        acts = recent_actions(conn, limit=50)
        # who acted, by their display name (the log keeps the login name, as the CLI shows it)
        people = display_names(conn, {a.username for a in acts})
    actors = [words.actor(a.username, a.action, people) for a in acts]
    return render(request, "users.html", users=users, acts=list(zip(acts, actors)), roles=ROLES, groups=GROUPS,
                  NAME_MAX=DISPLAY_NAME_MAX)


@router.post("/users")
async def add(request: Request):
    form = await checked_form(request)
    _admin(request)
    engine, by = console(request).engine, user_of(request).username
    try:
        user = await run_in_threadpool(
            manage.create, engine, str(form.get("username", "")), str(form.get("password", "")),
            role=str(form.get("role", "")), groups=tuple(str(g) for g in form.getlist("group")),
            display_name=str(form.get("display_name", "")), by=by)
    except ConsoleUserError as exc:
        flash(request, f"کاربر افزوده نشد: {exc.persian}", "error")
        return redirect("/users")
    flash(request, f"کاربر {user.username} افزوده شد.")
    return redirect("/users")


@router.post("/users/{username}/{action}")
async def change(request: Request, username: str, action: str):
    form = await checked_form(request)
    _admin(request)
    engine, by = console(request).engine, user_of(request).username
    try:
        if action == "password":
            # every session of the user ends (store.users.update_user); an admin's own new password
            # keeps the session it was set in, and ends their others
            changed = await run_in_threadpool(manage.set_password, engine, username, str(form.get("password", "")),
                                              by=by)
            if changed.username == by:
                request.session["epoch"] = changed.session_epoch
            flash(request, f"گذرواژهٔ {username} عوض شد.")
        elif action in ("disable", "enable"):
            if username == by and action == "disable":
                raise ConsoleUserError("you cannot disable yourself", "نمی‌توانید خودتان را غیرفعال کنید.")
            await run_in_threadpool(manage.set_disabled, engine, username, action == "disable", by=by)
            flash(request, f"کاربر {username} {'غیرفعال' if action == 'disable' else 'فعال'} شد.")
        else:
            raise Refused(404, "چنین کاری روی کاربر تعریف نشده است.")
    except ConsoleUserError as exc:
        flash(request, f"انجام نشد: {exc.persian}", "error")
    return redirect("/users")
