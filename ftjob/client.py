"""A small HTTP client for the job service: JSON routes, the error envelope, and a resumable SSE event stream."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ftjob import __version__

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
KINDS = ("sft", "dpo", "grpo", "merge", "adapter-conversion", "generate")


@dataclass
class Issue:
    """One problem of an error answer: the field path at fault (or None) and what is wrong with it."""

    param: str | None
    message: str


class ServiceError(Exception):
    """The service answered with an error (``{"error": {"code", "message", "param", "details"}}``)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        param: str | None = None,
        details: Sequence[Issue] = (),
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.param = param
        self.details = list(details)

    @classmethod
    def from_response(cls, response: httpx.Response) -> ServiceError:
        """Read the error envelope; a body that is not one (a proxy's HTML page) is kept as the message."""
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            text = response.text.strip().replace("\n", " ")
            reason = response.reason_phrase or "error"
            return cls(response.status_code, reason.lower().replace(" ", "_"), text[:300] or reason)
        details = [
            Issue(param=item.get("param"), message=str(item.get("message", "")))
            for item in error.get("details") or []
            if isinstance(item, dict)
        ]
        return cls(
            response.status_code,
            str(error.get("code") or "error"),
            str(error.get("message") or ""),
            error.get("param"),
            details,
        )


class ConnectionFailed(Exception):
    """The service could not be reached (refused, DNS, timeout, dropped too often)."""


@dataclass
class Event:
    """One job event as the SSE stream sends it: ``id``, ``type`` and the JSON ``data``."""

    id: int
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "data": self.data}


@dataclass
class _SseState:
    """What an SSE parser has seen so far: the last event id and the server's reconnection delay."""

    last_id: int | None = None
    retry_s: float = 3.0
    terminal: bool = False


def parse_sse(lines: Iterator[str], state: _SseState) -> Iterator[Event]:
    """Turn ``text/event-stream`` lines into events (the WHATWG rules we need: ``id``, ``event``, multi-line
    ``data``, ``retry``, ``:`` comments); ``state`` keeps the last id and the retry delay across reconnects."""
    event_id: str | None = None
    event_type = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                if event_id is not None and event_id.isdigit():
                    state.last_id = int(event_id)
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = {"text": "\n".join(data)}
                if not isinstance(payload, dict):
                    payload = {"value": payload}
                yield Event(state.last_id or 0, event_type, payload)
            event_id, event_type, data = None, "message", []
            continue
        if line.startswith(":"):
            continue  # a comment: the server's keep-alive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = value
        elif name == "event":
            event_type = value
        elif name == "data":
            data.append(value)
        elif name == "retry" and value.isdigit():
            state.retry_s = int(value) / 1000


ReconnectHook = Callable[[int, str], None]
_ENDED_EARLY = "the stream ended before the job did"


class Client:
    """The job service's routes used by ``ftjob``. Errors raise :class:`ServiceError` or :class:`ConnectionFailed`."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": f"ftjob/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ConnectionFailed(f"cannot reach {self.url}: {_describe(exc)}") from exc
        if response.status_code >= 400:
            raise ServiceError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceError(response.status_code, "bad_response", "the service answered with no JSON") from exc

    # -- routes

    def submit(
        self,
        kind: str,
        body: bytes,
        *,
        content_type: str = "application/yaml",
        name: str | None = None,
        labels: Sequence[str] = (),
        queue: str | None = None,
        processes: int | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Submit a config as a job of ``kind``; returns the job and whether it was created (False: an earlier
        submission with the same Idempotency-Key made it)."""
        params: list[tuple[str, str | int]] = [("label", label) for label in labels]
        if name is not None:
            params.append(("name", name))
        if queue is not None:
            params.append(("queue", queue))
        if processes is not None:
            params.append(("processes", processes))
        headers = {"Content-Type": content_type}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self._request("POST", f"/v1/jobs/{kind}", content=body, params=params, headers=headers)
        return response.json(), response.status_code == 201

    def get_job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._json("GET", f"/v1/jobs/{job_id}")
        return job

    def list_jobs(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        labels: Sequence[str] = (),
        limit: int | None = None,
        after: str | None = None,
    ) -> dict[str, Any]:
        """One page: ``{"data": [job, ...], "next": cursor or None}``."""
        params: list[tuple[str, str | int]] = [("label", label) for label in labels]
        for key, value in (("kind", kind), ("status", status), ("limit", limit), ("after", after)):
            if value is not None:
                params.append((key, value))
        page: dict[str, Any] = self._json("GET", "/v1/jobs", params=params)
        return page

    def cancel(self, job_id: str, *, checkpoint: bool = False) -> dict[str, Any]:
        """Cancel; ``checkpoint``: a training job saves a checkpoint first (and can be resumed)."""
        params = {"checkpoint": "true"} if checkpoint else None
        job: dict[str, Any] = self._json("POST", f"/v1/jobs/{job_id}/cancel", params=params)
        return job

    def resume(self, job_id: str) -> dict[str, Any]:
        """Queue a cancelled or failed training job again, from its checkpoint."""
        job: dict[str, Any] = self._json("POST", f"/v1/jobs/{job_id}/resume")
        return job

    def events(self, job_id: str, *, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every event the job has now, in order (all pages)."""
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self._json("GET", f"/v1/jobs/{job_id}/events", params={"after": after, "limit": page_size})
            events.extend(page["data"])
            if page.get("next") is None:
                return events
            after = int(page["next"])

    def logs(self, job_id: str) -> str:
        return self._request("GET", f"/v1/jobs/{job_id}/logs").text

    def output(self, job_id: str, *, yaml: bool = False) -> bytes:
        """A generate job's answers: JSON, or the YAML file as the job wrote it."""
        accept = "application/yaml" if yaml else "application/json"
        return self._request("GET", f"/v1/jobs/{job_id}/output", headers={"Accept": accept}).content

    def stream_events(
        self,
        job_id: str,
        *,
        after: int = 0,
        max_failures: int = 8,
        on_reconnect: ReconnectHook | None = None,
        read_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[Event]:
        """The job's events live, from ``after`` until its terminal ``job`` event. A dropped connection is resumed
        with ``Last-Event-ID`` so no event is lost or repeated; ``max_failures`` failed attempts in a row (without
        an event in between) raise :class:`ConnectionFailed`. Errors the service answers (401, 404) raise at once."""
        state = _SseState(last_id=after or None)
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if state.last_id is not None:
                headers["Last-Event-ID"] = str(state.last_id)
            problem: str
            try:
                timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
                path = f"/v1/jobs/{job_id}/events/stream"
                with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                    if response.status_code >= 400:
                        response.read()
                        error = ServiceError.from_response(response)
                        if response.status_code < 500:
                            raise error
                        problem = f"{response.status_code} {error.code}: {error.message}"
                    else:
                        for event in parse_sse(response.iter_lines(), state):
                            failures = 0
                            yield event
                            if event.type == "job" and event.data.get("status") in TERMINAL_STATUSES:
                                state.terminal = True
                                return
                        problem = _ENDED_EARLY
            except httpx.HTTPError as exc:
                problem = _describe(exc)
            if problem == _ENDED_EARLY:
                # the service closes a stream once the job is over: make sure it is not over already
                try:
                    status = self.get_job(job_id).get("status")
                except ConnectionFailed:
                    status = None
                if status in TERMINAL_STATUSES:
                    return
            failures += 1
            if failures > max_failures:
                raise ConnectionFailed(f"lost the event stream of job {job_id}: {problem}")
            if on_reconnect is not None:
                on_reconnect(failures, problem)
            sleep(min(state.retry_s, 0.5 * 2 ** (failures - 1)))


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
