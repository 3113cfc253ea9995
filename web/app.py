"""The console application: ``create_app(engine, config)`` builds it, ``budgetwatch web`` serves it.

A server-rendered FastAPI application: each page a module of web/pages/ with its router, Jinja2
templates from web/templates/, one stylesheet from web/static/ (served by the application itself:
the intranet has no internet, and nothing is fetched from elsewhere). No JavaScript: forms and
links, and a refresh header on the page of a running reconciliation.

Nothing answers without a session except the login page, the static files and ``/healthz``: the
``_require_session`` middleware loads the signed-in user from the store on every request, so a
user disabled or removed is out at their next click. A session carries its user's session epoch and
the time it was signed in: it ends when the user signs out, is given a new password or is disabled
(each raises the epoch: store.users), and SESSION_HOURS after it was signed in, however busy.

Outermost, ``_HeadAsGet`` answers HEAD as the GET of the same address without its body (monitors
ask with HEAD); inside it, ``_Guard`` refuses a request body over its limit before any form is read
(413), and turns an exception nothing else handled into the console's page of an error (500) with
one line in the log. Every error a person can meet (404, 405…, signed in or not) is the console's
Persian page; only ``/healthz``, read by monitors, answers its errors in plain text.
"""

from __future__ import annotations

import logging
import time
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foundation import fonts
from store.db import error_line
from store.users import canonical_username, end_sessions, get_user, record_action
from web import auth
from web.common import LOGIN_FIELDS, Console, Refused, console, flash, redirect, render, templates
from web.jobs import ReconcileJobs

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
PUBLIC_PATHS = ("/login", "/healthz")
MACHINE_PATHS = ("/healthz",)  # read by monitors, not people: its errors are plain text
HTTP_ERRORS = {404: "چنین صفحه‌ای نیست.", 405: "این نشانی این کار را نمی‌پذیرد."}
SESSION_HOURS = 10  # a working day: signed in at eight, out by evening
# the console fetches nothing from elsewhere and runs no script: say so to the browser
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
BODY_LIMIT = 64 * 1024  # bytes of a request's body: a form of this console is a few hundred
UPLOAD_SLACK = 1024 * 1024  # an upload's other fields and its multipart framing, beyond the file's own limit


def create_app(engine: Engine, config: Any, *, secret: str | None = None, https_only: bool = False,
               reconcile_runner: Any = None, limiter: auth.LoginLimiter | None = None,
               clock: Any = time.time) -> FastAPI:
    """The console over `engine` with `config` (budgetwatch.config.Config).

    ``secret`` signs the sessions (default: auth.session_secret of config.data_dir); ``https_only``
    marks the cookie Secure (set it when a TLS proxy stands in front); ``reconcile_runner``,
    ``limiter`` and ``clock`` (seconds since the epoch: a session's age) let tests slow a run down,
    shorten the login window or move the time on.
    """
    from web.pages import deviations, overview, reconcile_page, runs, subjects, users, visits

    app = FastAPI(title="budgetwatch console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = Console(engine=engine, config=config,
                                jobs=ReconcileJobs(engine, config.reconcile, runner=reconcile_runner),
                                limiter=limiter or auth.LoginLimiter(), templates=templates())
    for module in (overview, deviations, subjects, visits, reconcile_page, runs, users):
        app.include_router(module.router)

    @app.api_route("/static/fonts/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def font(name: str) -> FileResponse:
        """The typeface's two files (foundation/fonts), before the /static mount: its folder holds
        its module and licence too, which are not served. Kept a year by browsers: a file's name
        changes with its release."""
        if name not in fonts.FILES.values():
            raise StarletteHTTPException(404)
        return FileResponse(fonts.DIRECTORY / name, media_type="font/woff2",
                            headers={"Cache-Control": "public, max-age=31536000, immutable"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        """For monitors: the store answers. Says nothing else."""
        try:
            with engine.connect() as conn:
                conn.execute(sa.select(1))
        except Exception as exc:  # noqa: BLE001 - any failure is 'down' to a monitor; the log says why
            log.error("healthz: the store does not answer: %s", error_line(exc), exc_info=log.isEnabledFor(logging.DEBUG))
            return JSONResponse({"status": "store unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/"):  # noqa: A002 - the parameter's name in the URL
        # the sign-in form carries a token too (a site elsewhere must not sign a browser in as its own user)
        if not request.session.get("csrf"):
            request.session["csrf"] = auth.new_csrf_token()
        return render(request, "login.html", next=_safe_next(next), username="", error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        try:  # no file at all: a part that is one is refused before its content is read
            form = await request.form(max_files=0, max_fields=LOGIN_FIELDS)
        except StarletteHTTPException as exc:  # a form that is no sign-in form (Starlette's 400)
            request.session["csrf"] = auth.new_csrf_token()
            return render(request, "login.html", status_code=exc.status_code, next="/", username="",
                          error="فرمی که فرستادید فرم ورود نیست؛ دوباره وارد شوید.")
        typed = str(form.get("username", "")).strip()
        # ي ك of an Arabic keyboard layout are ی ک: one name, one user, one count of failures
        username = canonical_username(typed)
        password = str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "/")))
        if not auth.csrf_matches(request.session.get("csrf"), form.get("csrf")):
            request.session["csrf"] = auth.new_csrf_token()  # a fresh form to sign in with
            return render(request, "login.html", status_code=403, next=target, username=typed,
                          error="این برگهٔ ورود کهنه یا از جای دیگری است؛ دوباره وارد شوید.")
        address = request.client.host if request.client else "?"
        state = console(request)
        try:  # a slot taken before the password is checked: sign-ins sent at once count one another
            attempt = state.limiter.attempt(username, address)
        except auth.TooManyFailures as refused:
            minutes = max(1, round(refused.wait / 60))
            later = "چند لحظهٔ دیگر" if refused.wait < 60 else f"{_fa(minutes)} دقیقه دیگر"
            return render(request, "login.html", status_code=429, next=target, username=typed,
                          error=f"ورودهای ناموفق بسیار بوده است؛ {later} دوباره بکوشید.")
        with attempt:  # the slot given back if the store fails before the password is checked
            # looked up as typed: a name stored exactly so comes first (store.users get_user), then its
            # canonical spelling
            user = await run_in_threadpool(_user, engine, typed)
            ok = await run_in_threadpool(auth.check_password, user.password_hash if user else None, password)
            if not ok or user is None or user.disabled:
                attempt.failed()
                # the admin's log shows failed sign-ins too (the name as typed, cut to the column's width)
                await run_in_threadpool(_record_login, engine, typed.lower()[:64] or "?", address, "login_failed")
                return render(request, "login.html", status_code=401, next=target, username=typed,
                              error="نام کاربری یا گذرواژه درست نیست.")
            attempt.succeeded()
        # recorded first: a sign-in the admin's log cannot keep (the store failing) signs no one in
        await run_in_threadpool(_record_login, engine, user.username, address)
        request.session.clear()
        # the user's epoch (signing out, a new password, disabling end the session) and when it began
        # (it ends SESSION_HOURS later, however busy)
        request.session.update(user=user.username, csrf=auth.new_csrf_token(), epoch=user.session_epoch,
                               since=int(clock()))
        return redirect(target)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request):
        from web.common import checked_form

        await checked_form(request)
        # every session of the user ends, this cookie's copies elsewhere too
        await run_in_threadpool(_end_sessions, engine, request.state.user.username)
        request.session.clear()
        flash(request, "از سامانه خارج شدید.")  # shown by the sign-in page it leads to
        return redirect("/login")

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        return _error_page(request, exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # signed in or not, a person sees the console's page (a trial met «Not Found» in English at
        # /static/… and «Method Not Allowed» at /login); only what monitors read answers plainly
        headers = dict(exc.headers or {})
        allowed = [m.strip() for m in headers.get("Allow", "").split(",") if m.strip()]
        if "GET" in allowed and "HEAD" not in allowed:  # _HeadAsGet answers it wherever GET is
            headers["Allow"] = ", ".join([*allowed, "HEAD"])
        if request.url.path in MACHINE_PATHS:
            return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=headers)
        message = HTTP_ERRORS.get(exc.status_code, "نشانی یا فرمی که فرستادید درست نیست.")
        response = _error_page(request, exc.status_code, message)
        response.headers.update(headers)  # a 405's Allow
        return response

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError):
        # /deviations/abc: a page that cannot exist (FastAPI answered with its English JSON, 422)
        if any(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
            return _error_page(request, 404, "چنین صفحه‌ای نیست.")
        return render(request, "error.html", status_code=400, message="نشانی یا فرمی که فرستادید درست نیست.")

    @app.exception_handler(sa.exc.SQLAlchemyError)
    async def database_failed(request: Request, exc: sa.exc.SQLAlchemyError):
        return _unavailable(request, exc)

    @app.middleware("http")
    async def _require_session(request: Request, call_next):
        path = request.url.path
        if path in PUBLIC_PATHS or path.startswith("/static/"):
            response = await call_next(request)
        else:
            username = request.session.get("user")
            try:
                user = await run_in_threadpool(_user, engine, username) if username else None
            except sa.exc.SQLAlchemyError as exc:  # before the routes' own handler: said here alike
                response = _unavailable(request, exc)
                for name, value in SECURITY_HEADERS.items():
                    response.headers.setdefault(name, value)
                return response
            if user is None or user.disabled or not _current(request.session, user, clock()):
                request.session.clear()
                if path == "/logout":  # signing out of a session that has already ended
                    response = redirect("/login")
                elif request.method in ("GET", "HEAD"):
                    response = redirect(f"/login?next={quote(path + ('?' + request.url.query if request.url.query else ''))}")
                else:  # a form sent after the session ended: say so, in the page's words, and sign in again
                    request.session["csrf"] = auth.new_csrf_token()  # the sign-in form's own token
                    response = render(request, "login.html", status_code=401, next=_came_from(request),
                                      username=username or "", error=EXPIRED)
            else:
                request.state.user = user
                response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # the session is read before _require_session runs and written after it
    app.add_middleware(SessionMiddleware, secret_key=secret or auth.session_secret(config.data_dir),
                       session_cookie="budgetwatch_console", max_age=SESSION_HOURS * 3600, same_site="lax",
                       https_only=https_only)
    # outermost: a body over its limit is refused before anything reads it, and an exception that
    # no handler took is the console's page
    app.add_middleware(_Guard, limits={"/visits/file": visits.MAX_FILE_BYTES + UPLOAD_SLACK})
    # outside even that: HEAD is the GET of every page, without its body (monitors ask with HEAD)
    app.add_middleware(_HeadAsGet)
    return app


def _current(session: Any, user: Any, now: float) -> bool:
    """The session is of the user's present epoch and was signed in less than SESSION_HOURS ago (a
    session from before epochs, without them, has ended)."""
    epoch, since = session.get("epoch"), session.get("since")
    if not isinstance(epoch, int) or not isinstance(since, (int, float)) or isinstance(since, bool):
        return False
    return epoch == user.session_epoch and now - since < SESSION_HOURS * 3600


def _end_sessions(engine: Engine, username: str) -> None:
    with engine.begin() as conn:
        end_sessions(conn, username)


class _HeadAsGet:
    """ASGI middleware: a HEAD request is answered as its GET would be (the same status and headers,
    Content-Length too) without the body, as HTTP asks of every GET route. FastAPI's routes answer
    only the methods they name, so HEAD was 405 everywhere but the static files (a trial: monitors
    asking ``HEAD /healthz``); the application sees a GET, and its body is dropped here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def bodiless(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, bodiless)


class _BodyTooLarge(Exception):
    """A request's body went past its limit while it was being received."""


TOO_LARGE = "آنچه فرستادید بزرگ‌تر از اندازه‌ای است که سامانه می‌پذیرد."
FILE_TOO_LARGE = "پرونده بزرگ‌تر از ۵ مگابایت است؛ آن را در چند پرونده بفرستید."
UNEXPECTED = "خطایی پیش‌بینی‌نشده رخ داد و این کار انجام نشد؛ اگر دوباره رخ داد، به مدیر سامانه خبر دهید."


class _Guard:
    """ASGI middleware, the application's outermost:

    - a request body over its limit (``limits`` by path, else BODY_LIMIT) is refused with 413
      before anything reads it: at once when its Content-Length says so, else (a chunked body) as
      soon as the bytes received pass the limit, reading no further;
    - an exception no handler took is one line in the log (its traceback at DEBUG only) and the
      console's page of an error, 500, with the security headers (Starlette's own would log the
      traceback and answer in English).
    """

    def __init__(self, app: ASGIApp, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.limits = limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], BODY_LIMIT)
        message = FILE_TOO_LARGE if scope["path"] in self.limits else TOO_LARGE
        length = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if length.strip().isdigit() and int(length) > limit:
            await _small_page(413, message)(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            said = await receive()
            if said["type"] == "http.request":
                received += len(said.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return said

        async def sending(said: Message) -> None:
            nonlocal started
            started = started or said["type"] == "http.response.start"
            await send(said)

        try:
            await self.app(scope, counted, sending)
        except Exception as raised:  # noqa: BLE001 - the last resort: one line, and a page
            # an http middleware's task group wraps what the route raised in an ExceptionGroup
            exc = _unwrapped(raised)
            if isinstance(exc, _BodyTooLarge):
                if not started:
                    await _small_page(413, message)(scope, receive, send)
            elif isinstance(exc, ClientDisconnect):  # the browser went away mid-request: no one to answer
                log.info("%s %s: the client went away before its request was read", scope["method"], scope["path"])
            else:
                log.error("%s %s: unexpected error: %s", scope["method"], scope["path"], error_line(exc),
                          exc_info=(type(exc), exc, exc.__traceback__) if log.isEnabledFor(logging.DEBUG) else None)
                if not started:
                    await _unexpected(scope)(scope, receive, send)


def _unwrapped(exc: BaseException) -> BaseException:
    """What an ExceptionGroup holds: a body over its limit wherever it is among them, else the one
    exception (of nested groups too), else the group itself."""
    leaves: list[BaseException] = []
    waiting = [exc]
    while waiting:
        one = waiting.pop()
        if isinstance(one, BaseExceptionGroup):
            waiting.extend(reversed(one.exceptions))
        else:
            leaves.append(one)
    too_large = [leaf for leaf in leaves if isinstance(leaf, _BodyTooLarge)]
    if too_large:
        return too_large[0]
    return leaves[0] if len(leaves) == 1 else exc


def _small_page(status: int, message: str) -> Response:
    """A page of one Persian sentence, without templates or a session (sent before either is had),
    with the security headers."""
    html = ('<!doctype html><html lang="fa" dir="rtl"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>این کار انجام نشد · سامانهٔ پایش بودجه</title><link rel="stylesheet" href="/static/console.css">'
            f'</head><body><main><section class="card"><h1>این کار انجام نشد</h1><p>{escape(message)}</p>'
            '<p><a href="/">بازگشت به نمای کلی</a></p></section></main></body></html>')
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, "Connection": "close"})


def _unexpected(scope: Scope) -> Response:
    """The console's page of an unexpected error (500), the signed-in user's menu with it where the
    request got that far; a page of one sentence if even that fails."""
    try:
        response: Response = render(Request(scope), "error.html", status_code=500, message=UNEXPECTED)
    except Exception:  # noqa: BLE001 - the page itself failing: the sentence alone
        response = _small_page(500, UNEXPECTED)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


NOT_FOUND = "صفحه پیدا نشد"  # a 404's title and heading: not «این کار انجام نشد», nothing was tried


def _error_page(request: Request, status: int, message: str) -> Response:
    """The console's page of a refusal or an error: the status's heading and a Persian sentence."""
    heading = {404: NOT_FOUND}.get(status)
    return render(request, "error.html", status_code=status, message=message,
                  **({"heading": heading} if heading else {}))


UNAVAILABLE = "پایگاه داده اکنون پاسخ نمی‌دهد؛ چند دقیقه بعد دوباره بکوشید."
# a form's act may have been stored before what failed (its line in the log of acts, say)
UNAVAILABLE_AFTER_FORM = ("پایگاه داده اکنون پاسخ نمی‌دهد. شاید آنچه فرستادید ثبت شده باشد: "
                          "چند دقیقه بعد صفحه را دوباره باز کنید و پیش از فرستادن دوباره ببینید.")


def _unavailable(request: Request, exc: BaseException) -> Response:
    """A page's database error: one line in the log, its traceback only with --debug (a traceback's
    database message may quote a row: a password's hash), and 503 with a sentence to the person:
    a page of the console wherever there is a session (a store that is down fails before the
    signed-in user is known), a page of that one sentence elsewhere."""
    log.error("%s %s: %s", request.method, request.url.path, error_line(exc), exc_info=log.isEnabledFor(logging.DEBUG))
    if "session" not in request.scope:
        return _small_page(503, UNAVAILABLE)
    message = UNAVAILABLE if request.method in ("GET", "HEAD") else UNAVAILABLE_AFTER_FORM
    # not «این کار انجام نشد»: after a form, what was sent may have been recorded
    return render(request, "error.html", status_code=503, heading="پایگاه داده در دسترس نیست", message=message)


def _user(engine: Engine, username: str):
    with engine.connect() as conn:
        return get_user(conn, username)


def _record_login(engine: Engine, username: str, address: str, action: str = "login") -> None:
    with engine.begin() as conn:
        record_action(conn, username, action, detail=f"from {address}")


EXPIRED = "نشست شما به پایان رسیده بود و آنچه فرستادید ثبت نشد؛ دوباره وارد شوید و آن را از نو بفرستید."


def _came_from(request: Request) -> str:
    """The page a form was sent from (its Referer, on this site only), to return to after signing in."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or not referer.path:
        return "/"
    return _safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))


def _safe_next(target: str) -> str:
    """Only a path of this site after signing in: never another host (an open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _fa(n: int) -> str:
    from foundation.present import number

    return number(n)
