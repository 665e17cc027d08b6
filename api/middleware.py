"""A request body size limit that answers in the service's error envelope (413)."""

from __future__ import annotations

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
