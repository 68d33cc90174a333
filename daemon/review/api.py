"""The review HTTP API and web page: one ASGI (Starlette) app, served by uvicorn in the daemon.

API (``/api/v1``, JSON, ``Authorization: Bearer <token>``): list, show, the before/after PNGs,
approve, reject, comment, add/remove a box, verify, purge.  No or a bad token: 401; a role that
may not: 403 (recorded in the audit log as ``review_denied``).  Web page (``/review/``): sign in
with the token once, then a session cookie (HttpOnly, SameSite=Strict) and a CSRF token in every
form; pages are rendered server-side by Jinja2 with autoescape (a patient name ``<script>``
shows as text), no script runs on them (CSP ``default-src 'none'``).  URLs hold job keys and
de-identified SOP Instance UIDs only; every answer is ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dxai.configs.errors import DxaiError
from dxai.configs.schema.review import Role
from dxai.daemon.review.auth import Authenticator, Principal, Session
from dxai.daemon.review.errors import ReviewError
from dxai.daemon.review.manifest import BoxModel
from dxai.daemon.review.reid import LookupKind, ReidLookup
from dxai.daemon.review.service import ReviewService
from dxai.observability.logging import get_logger

log = get_logger(__name__)
COOKIE = "dxai_review"
MAX_FORM_BYTES = 65_536
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_HERE = Path(__file__).parent
_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
]
#: what a finished web action says (a fixed text per action: nothing of the request echoed)
NOTICES = {
    "approved": "Approved: the study was released to its destination.",
    "rejected": "Rejected: the study is blocked.",
    "commented": "Comment added.",
    "box_added": "Box added. Verify again before approving.",
    "box_removed": "Box removed. Verify again before approving.",
    "verified": "Verify pass done.",
}
Purge = Callable[[], Awaitable[dict[str, int]]]
_PSEUDONYM = re.compile(r"^[A-Za-z0-9._:^ -]{1,64}$")


class _SecurityHeaders:
    """Adds the security headers above to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _when(value: object) -> str:
    if not isinstance(value, int | float):
        return ""
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _uid(value: str) -> str:
    if not _UID.match(value) or len(value) > 64:
        raise HTTPException(404, "not found")
    return value


class ReviewApp:
    """The ASGI app (``.app``) over one :class:`ReviewService` and :class:`Authenticator`."""

    def __init__(
        self,
        service: ReviewService,
        auth: Authenticator,
        purge: Purge | None = None,
        reid: ReidLookup | None = None,
    ) -> None:
        self.service, self.auth, self.purge, self.reid = service, auth, purge, reid
        self.templates = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=True)
        self.templates.filters["when"] = _when
        api, web = "/api/v1/reviews", "/review/jobs/{job_key}"
        instance = "/instances/{sop_uid}"
        routes = [
            Route("/", _home),
            Route("/healthz", _health),
            Route(api, self.api_list),
            Route(api + "/{job_key}", self.api_show),
            Route(api + "/{job_key}" + instance + "/{which}.png", self.api_image),
            Route(api + "/{job_key}/approve", self.api_approve, methods=["POST"]),
            Route(api + "/{job_key}/reject", self.api_reject, methods=["POST"]),
            Route(api + "/{job_key}/comments", self.api_comment, methods=["POST"]),
            Route(api + "/{job_key}" + instance + "/boxes", self.api_add_box, methods=["POST"]),
            Route(
                api + "/{job_key}" + instance + "/boxes/{box_id:int}",
                self.api_remove_box,
                methods=["DELETE"],
            ),
            Route(api + "/{job_key}" + instance + "/verify", self.api_verify, methods=["POST"]),
            Route("/api/v1/purge", self.api_purge, methods=["POST"]),
            Route("/api/v1/reid/lookup", self.api_reid, methods=["POST"]),
            Route("/review/static/review.css", self.css),
            Route("/review/login", self.login_page),
            Route("/review/login", self.login, methods=["POST"]),
            Route("/review/logout", self.logout, methods=["POST"]),
            Route("/review/", self.web_list),
            Route(web, self.web_job),
            Route(web + instance + "/{which}.png", self.web_image),
            Route(web + "/{action}", self.web_action, methods=["POST"]),
            Route(web + instance + "/boxes", self.web_add_box, methods=["POST"]),
            Route(web + instance + "/boxes/{box_id:int}/delete", self.web_remove_box,
                  methods=["POST"]),
            Route(web + instance + "/verify", self.web_verify, methods=["POST"]),
        ]  # fmt: skip
        handlers: dict[Any, Any] = {HTTPException: self._http_error, DxaiError: self._dxai_error}
        starlette = Starlette(routes=routes, exception_handlers=handlers)
        self.app: ASGIApp = _SecurityHeaders(starlette)

    # -- errors --------------------------------------------------------------------------
    def _error(self, request: Request, status: int, detail: str) -> Response:
        if request.url.path.startswith("/api/"):
            headers = {"www-authenticate": "Bearer"} if status == 401 else None
            return JSONResponse({"error": _title(status), "detail": detail}, status, headers)
        page = self._render("error.html", None, status=status, title=_title(status), detail=detail)
        return HTMLResponse(page, status)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self._error(request, exc.status_code, str(exc.detail))

    async def _dxai_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DxaiError)
        status = exc.status if isinstance(exc, ReviewError) else 503 if exc.retriable else 500
        log.warning("review request failed", extra={"error_code": exc.code, "status": status})
        return self._error(request, status, f"{exc.code}: {exc}")

    def _render(self, name: str, session: Session | None, **values: Any) -> str:
        principal = session.principal if session else None
        csrf = session.csrf if session else ""
        return self.templates.get_template(name).render(principal=principal, csrf=csrf, **values)

    # -- API -----------------------------------------------------------------------------
    async def _api_user(
        self, request: Request, need: Role = "viewer", action: str = ""
    ) -> Principal:
        principal = await self.auth.bearer(request.headers.get("authorization", ""))
        if principal is None:
            raise HTTPException(401, "a valid bearer token is required")
        if not principal.may(need):
            key = request.path_params.get("job_key", "")
            await self.service.denied(key, principal.name, action)
            raise HTTPException(403, f"role {principal.role} may not {action}")
        return principal

    async def api_list(self, request: Request) -> Response:
        """``GET /api/v1/reviews``: every held job."""
        await self._api_user(request)
        return JSONResponse({"reviews": await self.service.list_held()})

    async def api_show(self, request: Request) -> Response:
        """``GET /api/v1/reviews/{job_key}``: one review in full."""
        user = await self._api_user(request)
        return JSONResponse(await self.service.show(request.path_params["job_key"], user.name))

    async def api_image(self, request: Request) -> Response:
        """``GET .../instances/{sop_uid}/{before|after}.png``."""
        await self._api_user(request)
        return await self._image(request)

    async def _image(self, request: Request) -> Response:
        which = request.path_params["which"]
        if which not in ("before", "after"):
            raise HTTPException(404, "not found")
        sop = _uid(request.path_params["sop_uid"])
        png = await self.service.image(request.path_params["job_key"], sop, which)
        return Response(png, media_type="image/png")

    async def _api_body(self, request: Request) -> dict[str, Any]:
        raw = await bounded_body(request, MAX_FORM_BYTES)
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise HTTPException(400, "the body is not JSON") from exc
        if not isinstance(value, dict):
            raise HTTPException(400, "the body must be a JSON object")
        return value

    async def api_approve(self, request: Request) -> Response:
        """``POST .../approve`` ``{"comment": "..."}``: release the study."""
        user = await self._api_user(request, "reviewer", "approve")
        comment = str((await self._api_body(request)).get("comment", ""))
        return JSONResponse(
            await self.service.approve(request.path_params["job_key"], user.name, comment)
        )

    async def api_reject(self, request: Request) -> Response:
        """``POST .../reject`` ``{"comment": "..."}``: block the study."""
        user = await self._api_user(request, "reviewer", "reject")
        comment = str((await self._api_body(request)).get("comment", ""))
        return JSONResponse(
            await self.service.reject(request.path_params["job_key"], user.name, comment)
        )

    async def api_comment(self, request: Request) -> Response:
        """``POST .../comments`` ``{"text": "..."}``."""
        user = await self._api_user(request, "reviewer", "comment")
        text = str((await self._api_body(request)).get("text", ""))
        await self.service.comment(request.path_params["job_key"], user.name, text)
        return JSONResponse({"status": "commented"}, 201)

    async def api_add_box(self, request: Request) -> Response:
        """``POST .../boxes`` ``{"x0", "y0", "x1", "y1"}``: a new redaction box."""
        user = await self._api_user(request, "reviewer", "add_box")
        box = _box(await self._api_body(request))
        added = await self.service.add_box(
            request.path_params["job_key"], _uid(request.path_params["sop_uid"]), user.name, box
        )
        return JSONResponse(added.model_dump(), 201)

    async def api_remove_box(self, request: Request) -> Response:
        """``DELETE .../boxes/{box_id}``."""
        user = await self._api_user(request, "reviewer", "remove_box")
        params = request.path_params
        await self.service.remove_box(
            params["job_key"], _uid(params["sop_uid"]), user.name, int(params["box_id"])
        )
        return JSONResponse({"status": "removed"})

    async def api_verify(self, request: Request) -> Response:
        """``POST .../verify``: fill the reviewer's boxes, run the pixel pass again."""
        user = await self._api_user(request, "reviewer", "verify")
        params = request.path_params
        state = await self.service.verify(params["job_key"], _uid(params["sop_uid"]), user.name)
        return JSONResponse(state.model_dump())

    async def api_purge(self, request: Request) -> Response:
        """``POST /api/v1/purge`` (admin): run the retention purge now."""
        await self._api_user(request, "admin", "purge")
        if self.purge is None:
            raise HTTPException(503, "purge is not available")
        return JSONResponse(await self.purge())

    async def api_reid(self, request: Request) -> Response:
        """``POST /api/v1/reid/lookup`` (admin) ``{"uid": ...}`` or ``{"patient": ...}``: the
        original behind a de-identified UID or a patient pseudonym; every lookup audited."""
        user = await self._api_user(request, "admin", "reid_lookup")
        kind, key = _reid_query(await self._api_body(request))
        if self.reid is None:
            raise HTTPException(503, "the re-identification map is not available")
        original = await self.reid.lookup(kind, key, user.name)
        return JSONResponse({"kind": kind, "key": key, "original": original})

    # -- web page ------------------------------------------------------------------------
    async def css(self, _request: Request) -> Response:
        """The page's style sheet."""
        text = (_HERE / "static" / "review.css").read_text(encoding="utf-8")
        return PlainTextResponse(text, media_type="text/css")

    async def login_page(self, request: Request) -> Response:
        """The sign-in form."""
        return HTMLResponse(self._render("login.html", None, failed=False))

    async def login(self, request: Request) -> Response:
        """Sign in with a token: a session cookie, then the queue."""
        form = await _form(request)
        signed = await self.auth.login(form.get("token", ""))
        if signed is None:
            page = self._render("login.html", None, failed=True)
            return HTMLResponse(page, 401)
        sid, _session = signed
        response = RedirectResponse("/review/", 303)
        response.set_cookie(
            COOKIE,
            sid,
            max_age=int(self.auth.session_ttl_s),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        """End the session."""
        await self._web_post(request, "viewer", "logout")
        self.auth.logout(request.cookies.get(COOKIE))
        response = RedirectResponse("/review/login", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def _session(self, request: Request) -> Session | None:
        return await self.auth.session(request.cookies.get(COOKIE))

    async def web_list(self, request: Request) -> Response:
        """The queue of held jobs."""
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/review/login", 303)
        jobs = await self.service.list_held()
        return HTMLResponse(self._render("list.html", session, jobs=jobs, notice=""))

    async def web_job(self, request: Request) -> Response:
        """One job: every held instance before/after with its boxes, the forms to decide."""
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/review/login", 303)
        key = request.path_params["job_key"]
        job = await self.service.show(key, session.principal.name)
        pending = job["state"] == "held_for_review" and job["review"] == "pending"
        facts = {}
        if pending:
            for inst in job["instances"]:
                if inst["releasable"] and inst["status"] == "held":
                    facts[inst["sop_uid"]] = await self.service.header_facts(key, inst["sop_uid"])
        notice = NOTICES.get(request.query_params.get("done", ""), "")
        page = self._render(
            "job.html", session, job=job, pending=pending, images=pending,
            facts_by_sop=facts, notice=notice,
        )  # fmt: skip
        return HTMLResponse(page)

    async def web_image(self, request: Request) -> Response:
        """A before/after PNG for the signed-in user."""
        if await self._session(request) is None:
            raise HTTPException(401, "sign in first")
        return await self._image(request)

    async def _web_post(self, request: Request, need: Role, action: str) -> Session:
        """The session of a form post with a valid CSRF token and a role that may ``action``."""
        session = await self._session(request)
        if session is None:
            raise HTTPException(401, "sign in first")
        form = await _form(request)
        request.state.form = form
        if not _same(form.get("csrf", ""), session.csrf):
            raise HTTPException(403, "the form is stale: reload the page")
        if not session.principal.may(need):
            key = request.path_params.get("job_key", "")
            await self.service.denied(key, session.principal.name, action)
            raise HTTPException(403, f"role {session.principal.role} may not {action}")
        return session

    async def web_action(self, request: Request) -> Response:
        """Approve, reject or comment from the job page."""
        action = request.path_params["action"]
        if action not in ("approve", "reject", "comment"):
            raise HTTPException(404, "not found")
        session = await self._web_post(request, "reviewer", action)
        key, user, form = request.path_params["job_key"], session.principal.name, request.state.form
        if action == "approve":
            await self.service.approve(key, user, form.get("comment", ""), via="web")
            done = "approved"
        elif action == "reject":
            await self.service.reject(key, user, form.get("comment", ""), via="web")
            done = "rejected"
        else:
            await self.service.comment(key, user, form.get("text", ""))
            done = "commented"
        return RedirectResponse(f"/review/jobs/{key}?done={done}", 303)

    async def web_add_box(self, request: Request) -> Response:
        """Add a redaction box from the job page."""
        session = await self._web_post(request, "reviewer", "add_box")
        key, sop = request.path_params["job_key"], _uid(request.path_params["sop_uid"])
        box = _box(request.state.form)
        await self.service.add_box(key, sop, session.principal.name, box)
        return RedirectResponse(f"/review/jobs/{key}?done=box_added", 303)

    async def web_remove_box(self, request: Request) -> Response:
        """Remove a reviewer's box from the job page."""
        session = await self._web_post(request, "reviewer", "remove_box")
        params = request.path_params
        key, sop, box_id = params["job_key"], _uid(params["sop_uid"]), int(params["box_id"])
        await self.service.remove_box(key, sop, session.principal.name, box_id)
        return RedirectResponse(f"/review/jobs/{key}?done=box_removed", 303)

    async def web_verify(self, request: Request) -> Response:
        """Run the verify pass from the job page."""
        session = await self._web_post(request, "reviewer", "verify")
        key, sop = request.path_params["job_key"], _uid(request.path_params["sop_uid"])
        await self.service.verify(key, sop, session.principal.name)
        return RedirectResponse(f"/review/jobs/{key}?done=verified", 303)


async def _home(_request: Request) -> Response:
    return RedirectResponse("/review/", 303)


async def _health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request body, 413 past ``limit`` bytes: the declared length is checked first and the
    stream is read only up to the bound (``Request.body`` reads everything first, and the login
    form is open to anyone who reaches the port)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, "body too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, "body too large")
    return bytes(body)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form (bounded; the first value of each field)."""
    raw = await bounded_body(request, MAX_FORM_BYTES)
    try:
        fields = parse_qs(raw.decode("utf-8"), max_num_fields=32)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, "unreadable form") from exc
    return {name: values[0] for name, values in fields.items() if values}


def _box(values: dict[str, Any]) -> BoxModel:
    try:
        coords = {name: int(str(values[name]).strip()) for name in ("x0", "y0", "x1", "y1")}
        return BoxModel(**coords, reason="reviewer")
    except (KeyError, ValueError, TypeError) as exc:
        raise HTTPException(400, "a box needs integer x0, y0, x1, y1 >= 0") from exc


def _reid_query(body: dict[str, Any]) -> tuple[LookupKind, str]:
    """``("uid", X)`` or ``("patient", P)`` from a lookup body; 400 otherwise."""
    uid, patient = body.get("uid"), body.get("patient")
    if isinstance(uid, str) and patient is None and _UID.match(uid) and len(uid) <= 64:
        return "uid", uid
    if isinstance(patient, str) and uid is None and _PSEUDONYM.match(patient):
        return "patient", patient
    raise HTTPException(400, 'give {"uid": "<de-identified UID>"} or {"patient": "<pseudonym>"}')


def _title(status: int) -> str:
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    titles |= {409: "Conflict", 413: "Too Large", 500: "Error", 503: "Unavailable"}
    return titles.get(status, "Error")
