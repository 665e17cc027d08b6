"""The API's request context (request id, route template, the job id of routes that name one) and its timing; the
log format and the context variables are :mod:`jobcore.logs`'s, shared with the workers."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobcore.logs import JOB_ID, REQUEST_ID

REQUEST_ID_HEADER = "x-request-id"
# a caller's request id is kept when it is short and plain (it ends up in log lines); otherwise a new one is made
_ACCEPTED_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# the label of requests that match no route (a 404, a slash redirect): raw paths would make labels unbounded
UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# -- the API's request context ---------------------------------------------------------------------------------------

RequestRecorder = Callable[[str, str, int, float], None]
"""Called once per HTTP request with (method, route template, status, seconds until the response started)."""


@dataclass(frozen=True)
class RouteTemplate:
    """A route as the app declares it: its full path template (``/v1/jobs/{job_id}``) and methods."""

    template: str
    regex: re.Pattern[str]
    methods: frozenset[str] | None


def route_templates(app: Any) -> list[RouteTemplate]:
    """The app's routes in matching order, with their full paths (routers' prefixes included)."""
    try:  # newer FastAPI keeps included routers as such; this yields their routes with the full paths
        from fastapi.routing import iter_route_contexts

        routes: Iterable[Any] = iter_route_contexts(app.router.routes)
    except ImportError:  # older FastAPI copies every included route into app.routes with its full path
        routes = app.router.routes
    found = []
    for route in routes:
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not template:
            continue
        methods = getattr(route, "methods", None)
        regex = compile_path(template)[0]
        found.append(RouteTemplate(template, regex, frozenset(methods) if methods else None))
    return found


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the ``root_path`` a proxy mounts the app under."""
    path: str = scope["path"]
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def route_of(scope: Scope, routes: Sequence[RouteTemplate]) -> tuple[str, dict[str, str]]:
    """The template of the route that will handle ``scope`` and its path parameters, as the router picks it: the
    first route whose path and method match, else the first whose path matches (a 405); :data:`UNMATCHED_ROUTE` when
    none."""
    path = _route_path(scope)
    method = scope.get("method", "GET")
    partial: tuple[str, dict[str, str]] | None = None
    for route in routes:
        match = route.regex.match(path)
        if match is None:
            continue
        found = (route.template, match.groupdict())
        if route.methods is None or method in route.methods or (method == "HEAD" and "GET" in route.methods):
            return found
        partial = partial or found
    return partial or (UNMATCHED_ROUTE, {})


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            if _ACCEPTED_REQUEST_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """For each HTTP request: a request id (the caller's ``X-Request-ID`` when plain, else a new one; echoed in the
    response), the job id of routes with a ``{job_id}``, both in the logging context; whatever else ``context`` sets
    (per-app values read by the handlers); and ``record(method, route, status, seconds)`` once the response starts
    (for a stream: when it starts, not when it ends), labelled by route template, never by raw path."""

    def __init__(
        self,
        app: ASGIApp,
        record: RequestRecorder | None = None,
        context: Iterable[tuple[ContextVar[Any], Any]] = (),
    ) -> None:
        self.app = app
        self.record = record
        self.context = tuple(context)
        self._templates: tuple[int, list[RouteTemplate]] | None = None

    def _routes(self, scope: Scope) -> list[RouteTemplate]:
        # built on the first request (the app is complete by then), again if routes were added since
        app = scope.get("app")
        routes = getattr(getattr(app, "router", None), "routes", ())
        if self._templates is None or self._templates[0] != len(routes):
            self._templates = (len(routes), route_templates(app) if routes else [])
        return self._templates[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route, params = route_of(scope, self._routes(scope))
        request_id = _request_id(scope)
        method = scope["method"] if scope["method"] in _METHODS else "other"
        job_id = str(params.get("job_id") or "")[:100] or None  # (ids are 36 characters; a path may hold anything)
        tokens = [(REQUEST_ID, REQUEST_ID.set(request_id)), (JOB_ID, JOB_ID.set(job_id))]
        tokens += [(var, var.set(value)) for var, value in self.context]
        recorded = False

        def _record(status: int) -> None:
            nonlocal recorded
            if self.record is not None and not recorded:
                recorded = True
                self.record(method, route, status, time.perf_counter() - started)

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode())]
                _record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except BaseException:
            _record(500)  # the server answers 500 for an exception that escaped the app
            raise
        finally:
            for var, token in reversed(tokens):
                var.reset(token)
