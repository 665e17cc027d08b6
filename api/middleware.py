"""A request body size limit (413) and a NUL-character guard (422) that answer in the service's error envelope."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_response


class BodyLimitMiddleware:
    """Refuses a body over ``max_bytes``: at once when Content-Length says so, else while it is being read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ApiError:
        return ApiError(413, "body_too_large", f"the request body is larger than {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                bad = ApiError(400, "bad_request", "invalid Content-Length header", "Content-Length")
                await error_response(bad)(scope, receive, send)
                return
            if length > self.max_bytes:
                await error_response(self._too_large())(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # raised where the app reads the body, so the app's ApiError handler answers it
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)


class NulCharacterMiddleware:
    """Refuses a NUL character in the URL path, a query parameter or a header (422 naming it): nothing can match
    it, and Postgres text cannot hold it, so it would otherwise fail deep in a query as a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def _offending(scope: Scope) -> str | None:
        if "\x00" in scope.get("path", ""):
            return "path"
        query = scope.get("query_string", b"").decode("latin-1")
        if "%00" in query or "\x00" in query:
            for name, value in parse_qsl(query, keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    return name.replace("\x00", "\\x00") or "query"
        for name, value in scope.get("headers") or []:
            if b"\x00" in value:
                return name.decode("latin-1").title()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = self._offending(scope) if scope["type"] == "http" else None
        if where is None:
            await self.app(scope, receive, send)
            return
        param = None if where == "path" else where
        bad = ApiError(422, "invalid_parameter", f"the request's {where} contains a NUL character", param)
        await error_response(bad)(scope, receive, send)


class InFlightLimitMiddleware:
    """Answers ``503 overloaded`` at once when ``limit`` requests of this process are already waiting for their
    answer: under a flood, refusing early is what keeps the accepted requests (and the refusals) fast, instead of
    queueing every arrival until clients time out. A request stops counting when its response starts, so a live
    stream holds no place; the liveness probe is never refused."""

    def __init__(self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = ("/healthz",)) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limit or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.waiting >= self.limit:
            from api.deps import overloaded  # (api.deps imports this package's errors; no cycle at call time)

            await error_response(overloaded("requests in flight"))(scope, receive, send)
            return
        self.waiting += 1
        counted = True

        async def send_started(message: Message) -> None:
            nonlocal counted
            if counted and message["type"] == "http.response.start":
                counted = False
                self.waiting -= 1
            await send(message)

        try:
            await self.app(scope, receive, send_started)
        finally:
            if counted:
                self.waiting -= 1
