"""Webhooks through the real service: uvicorn serving the API, Postgres, Redis, a real Celery worker process and the
tiny model, with a real HTTP receiver on 127.0.0.1 (allowed in the test settings) that verifies every signature with
the Standard Webhooks reference library. The receiver goes down while a job trains and comes back on the same port:
every event arrives, in order, none lost; the delivery log shows the refused attempts, then the success; redeliver
sends a message again. Registration refuses URLs that lead to the internal network (422 naming ``url``), shows the
secret once, and another project sees none of it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from fastapi.testclient import TestClient

from api.main import create_app
from jobcore.settings import ServiceSettings
from jobcore.webhooks.outbox import EVENT_TYPES, webhook_type
from tests.service.api_helpers import Caller, assert_error, make_token, new_project, sft_body

pytestmark = pytest.mark.slow


class Receiver:
    """A webhook receiver on a fixed port of 127.0.0.1: verifies each request's signature (401 when it does not
    verify), records it and answers 200. :meth:`stop` closes the port (connections are refused), :meth:`start` opens
    it again."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.secret: str | None = None
        self.received: list[dict[str, Any]] = []
        self.rejected = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/finetuning?team=nlp"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    assert receiver.secret is not None
                    message = standardwebhooks.Webhook(receiver.secret).verify(body, headers)
                except Exception:
                    with receiver.lock:
                        receiver.rejected += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.received.append({"id": headers["webhook-id"], "path": self.path, **message})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def messages(self, job_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            found = list(self.received)
        return [m for m in found if job_id is None or m["data"].get("job_id") == job_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.start()
    yield found
    found.stop()


def project_client(base_url: str, settings: ServiceSettings) -> httpx.Client:
    token = make_token(settings, new_project())
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture
def client(base_url: str, settings: ServiceSettings) -> Iterator[httpx.Client]:
    with project_client(base_url, settings) as http:
        yield http


@pytest.fixture
def stranger(base_url: str, settings: ServiceSettings) -> Iterator[httpx.Client]:
    with project_client(base_url, settings) as http:
        yield http


def register(client: httpx.Client, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    created = client.post("/v1/webhooks", json={"url": receiver.url, **fields})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    receiver.secret = body["secret"]
    return body


def wait_for(what: str, check: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def deliveries(client: httpx.Client, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 200, **params})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["data"]
    return found


def expected_types(client: httpx.Client, job_id: str) -> list[str]:
    """The webhooks the job's stored events make, in their order (the same rule the outbox applies)."""
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    return [t.value for e in events if (t := webhook_type(e["type"], e["data"])) is not None]


def test_a_jobs_events_arrive_in_order_through_a_receiver_outage(
    client: httpx.Client, stranger: httpx.Client, receiver: Receiver, tiny_model_dir: Path, data_dir: Path
) -> None:
    from finetuning.tiny import tiny_chat_records, write_jsonl

    webhook = register(client, receiver, description="portal")
    assert webhook["secret"].startswith("whsec_")
    assert webhook["event_types"] == list(EVENT_TYPES)
    receiver.stop()  # down before the job starts: every event must wait for it

    data = write_jsonl(tiny_chat_records(32), data_dir / "webhooks.jsonl")
    body = sft_body(tiny_model_dir, data)
    body["data_conf"]["validation_data"] = {"type": "AUTO_SPLIT", "ratio": 0.25}
    body["training_args"].update(
        max_steps=6, logging_steps=2, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=3
    )
    created = client.post("/v1/jobs/sft", json=body, params={"name": "hooked", "label": "team=nlp"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    # the first delivery is retried while the receiver is down; the job's later ones wait behind it
    def refused_twice() -> bool:
        started = deliveries(client, webhook["id"], job_id=job_id, event_type="job.started")
        return bool(started) and len(started[0]["attempts"]) >= 2

    wait_for("retries of job.started", refused_twice)
    job = wait_for(
        "the job to finish",
        lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("succeeded", "failed") and j,
        300,
    )
    assert job["status"] == "succeeded", job["error"]
    assert receiver.messages() == []
    log = deliveries(client, webhook["id"], job_id=job_id)
    assert all(d["status"] == "pending" for d in log)
    assert client.get(f"/v1/webhooks/{webhook['id']}").json()["pending_deliveries"] == len(log)

    receiver.start()  # back, on the same port
    wanted = expected_types(client, job_id)
    assert wanted[0] == "job.started"
    assert wanted[-1] == "job.succeeded"
    assert {"job.eval", "job.checkpoint_saved"} <= set(wanted)
    wait_for(
        "every delivery to succeed",
        lambda: all(d["status"] == "succeeded" for d in deliveries(client, webhook["id"], job_id=job_id)),
    )

    # every event arrived, in order, none lost (a duplicate would be allowed: at least once; none is expected)
    arrived = receiver.messages(job_id)
    firsts = list({m["id"]: m for m in reversed(arrived)}.values())[::-1]
    assert [m["type"] for m in firsts] == wanted
    assert len(arrived) == len(wanted)
    assert receiver.rejected == 0
    assert {m["path"] for m in arrived} == {"/hooks/finetuning?team=nlp"}
    by_type = {m["type"]: m["data"] for m in arrived}
    assert by_type["job.succeeded"]["job_id"] == job_id
    assert by_type["job.succeeded"]["labels"] == {"team": "nlp"}
    assert by_type["job.succeeded"]["name"] == "hooked"
    assert by_type["job.succeeded"]["artifacts"] == job["artifacts"]
    checkpoints = [m["data"] for m in arrived if m["type"] == "job.checkpoint_saved"]
    assert [c["step"] for c in checkpoints] == [3, 6]
    assert checkpoints[0]["checkpoint"] == f"job:{job_id}/checkpoint-3"
    evals = [m["data"] for m in arrived if m["type"] == "job.eval"]
    assert [e["step"] for e in evals] == [2, 4, 6]
    assert all("loss" in e["metrics"] for e in evals)

    # the log: the refused attempts, then the success
    log = deliveries(client, webhook["id"], job_id=job_id)
    assert [d["event_type"] for d in reversed(log)] == wanted
    started = log[-1]
    assert started["event_type"] == "job.started"
    assert len(started["attempts"]) >= 3
    assert all(a["status_code"] is None and "refused" in a["error"].lower() for a in started["attempts"][:-1])
    assert started["attempts"][-1]["status_code"] == 200
    assert started["attempts"][-1]["error"] is None
    assert started["attempts"][-1]["response"] == '{"ok": true}'
    sent = next(m for m in arrived if m["type"] == "job.started")
    assert started["payload"] == {k: v for k, v in sent.items() if k not in ("id", "path")}
    assert started["id"] == sent["id"]

    # redeliver: the same message again
    succeeded = log[0]
    again = client.post(f"/v1/webhooks/{webhook['id']}/deliveries/{succeeded['id']}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    wait_for("the redelivery", lambda: len([m for m in receiver.messages(job_id) if m["id"] == succeeded["id"]]) == 2)
    one = client.get(f"/v1/webhooks/{webhook['id']}/deliveries/{succeeded['id']}").json()
    assert one["status"] == "succeeded"
    assert len(one["attempts"]) == 2

    # another project sees none of it
    for method, path in [
        ("GET", f"/v1/webhooks/{webhook['id']}"),
        ("PATCH", f"/v1/webhooks/{webhook['id']}"),
        ("GET", f"/v1/webhooks/{webhook['id']}/deliveries"),
        ("GET", f"/v1/webhooks/{webhook['id']}/deliveries/{succeeded['id']}"),
        ("POST", f"/v1/webhooks/{webhook['id']}/deliveries/{succeeded['id']}/redeliver"),
        ("POST", f"/v1/webhooks/{webhook['id']}/rotate-secret"),
        ("POST", f"/v1/webhooks/{webhook['id']}/test"),
        ("DELETE", f"/v1/webhooks/{webhook['id']}"),
    ]:
        # a new URL is not even looked up for another project's endpoint
        answer = stranger.request(method, path, json={"url": "http://10.0.0.1/"} if method == "PATCH" else None)
        assert_error(answer, 404, "not_found")
    assert stranger.get("/v1/webhooks").json()["data"] == []
    assert client.get(f"/v1/webhooks/{webhook['id']}").status_code == 200


def test_the_secret_is_shown_once_and_rotation_keeps_the_old_one_for_a_while(
    client: httpx.Client, receiver: Receiver
) -> None:
    webhook = register(client, receiver, event_types=["job.failed", "job.succeeded", "job.failed"])
    assert webhook["event_types"] == ["job.succeeded", "job.failed"]
    for answer in (client.get(f"/v1/webhooks/{webhook['id']}"), client.get("/v1/webhooks")):
        assert answer.status_code == 200
        shown = answer.json()
        assert all("secret" not in item for item in shown.get("data", [shown]))
        assert webhook["secret"] not in answer.text
    ping = client.post(f"/v1/webhooks/{webhook['id']}/test")
    assert ping.status_code == 202
    assert ping.json()["event_type"] == "webhook.test"
    wait_for("the test message", lambda: [m for m in receiver.messages() if m["id"] == ping.json()["id"]])

    old = webhook["secret"]
    rotated = client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", json={"keep_previous_seconds": 3600})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old
    assert rotated.json()["previous_secret_expires_at"] is not None
    receiver.secret = old  # a receiver that has not switched yet still verifies
    ping = client.post(f"/v1/webhooks/{webhook['id']}/test").json()
    wait_for("a message signed with both", lambda: [m for m in receiver.messages() if m["id"] == ping["id"]])
    receiver.secret = new
    revoked = client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", json={"keep_previous_seconds": 0})
    receiver.secret = revoked.json()["secret"]
    assert revoked.json()["previous_secret_expires_at"] is None

    patched = client.patch(f"/v1/webhooks/{webhook['id']}", json={"enabled": False, "description": "paused"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False
    assert patched.json()["description"] == "paused"
    assert patched.json()["event_types"] == ["job.succeeded", "job.failed"]
    assert client.delete(f"/v1/webhooks/{webhook['id']}").status_code == 204
    assert_error(client.get(f"/v1/webhooks/{webhook['id']}"), 404, "not_found")
    assert_error(client.get(f"/v1/webhooks/{webhook['id']}/deliveries"), 404, "not_found")


def test_a_url_into_the_internal_network_is_refused(
    client: httpx.Client, settings: ServiceSettings, receiver: Receiver
) -> None:
    # no token, no lookup of the URL
    anonymous = httpx.post(f"{client.base_url}/v1/webhooks", json={"url": "http://10.0.0.1/"})
    assert_error(anonymous, 401, "unauthorized")
    # the test settings allow 127.0.0.1 (the receivers); that opens nothing else
    for url in ("http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]:8080/"):
        error = assert_error(client.post("/v1/webhooks", json={"url": url}), 422, "webhook_url_not_allowed", "url")
        assert "FINETUNING_WEBHOOK_ALLOWED_HOSTS" in error["message"]
    webhook = register(client, receiver)
    moved = client.patch(f"/v1/webhooks/{webhook['id']}", json={"url": "http://10.0.0.1/"})
    assert_error(moved, 422, "webhook_url_not_allowed", "url")
    assert_error(client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["job.nope"]}), 422)
    assert_error(client.post("/v1/webhooks", json={"url": receiver.url, "event_types": []}), 422, None, "event_types")

    # where nothing is allowed beyond public addresses, localhost and loopback are refused too
    strict = settings.model_copy(update={"webhook_allowed_hosts": [], "webhook_sender": False})
    with TestClient(create_app(strict), raise_server_exceptions=False) as app:
        caller = Caller(app, strict)
        for url in (
            "http://localhost:8080/hook",
            "http://127.0.0.1/",
            receiver.url,
            "http://2130706433/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "ftp://example.org/",
            "http://user:pw@example.org/",
        ):
            assert_error(caller.post("/v1/webhooks", {"url": url}), 422, "webhook_url_not_allowed", "url")
        assert_error(caller.post("/v1/webhooks", {}), 422, None, "url")


def test_a_job_cancelled_while_queued_is_reported_by_the_api(
    caller: Caller, body: dict[str, Any], receiver: Receiver
) -> None:
    """No worker takes part: the API's own sender delivers the cancel it recorded."""
    created = caller.post("/v1/webhooks", {"url": receiver.url, "event_types": ["job.cancelled"]})
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["secret"]
    job = caller.post("/v1/jobs/sft", body)
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    assert caller.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    (message,) = wait_for("job.cancelled", lambda: receiver.messages(job_id))
    assert message["type"] == "job.cancelled"
    assert message["data"]["status"] == "cancelled"
    assert message["data"]["project"] == caller.project
    assert message["data"]["kind"] == "sft"
