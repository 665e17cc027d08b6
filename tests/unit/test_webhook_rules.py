"""Webhooks without services: where they may go (the SSRF guard), their signatures (checked with the Standard Webhooks
reference library), which events make them, and the sender's rules on a SQLite database (order per job and endpoint,
leases, back-off, giving up, redelivery) with an in-process transport."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from sqlalchemy import create_engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from jobcore import transitions
from jobcore.models import Base, Job, JobStatus, WebhookAttempt, WebhookDelivery, new_id
from jobcore.settings import ServiceSettings
from jobcore.webhooks import endpoints, outbox, signing, urls
from jobcore.webhooks.outbox import EVENT_TYPES, WebhookEventType, webhook_type
from jobcore.webhooks.sender import Sender, backoff_seconds

PUBLIC = ipaddress.ip_address("93.184.216.34")


def resolver_of(table: dict[str, list[str]]) -> urls.Resolver:
    def resolve(host: str, port: int) -> list[urls.IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        if host not in table:
            raise urls.UrlRefused(f"the host {host} does not resolve")
        return [ipaddress.ip_address(a) for a in table[host]]

    return resolve


NAMES = resolver_of(
    {
        "portal.example.com": [str(PUBLIC)],
        "localhost": ["127.0.0.1", "::1"],
        "rebound.example.com": [str(PUBLIC), "10.1.2.3"],
        "hooks.internal": ["10.9.9.9"],
        "a.corp": ["192.168.1.5"],
        "metadata": ["169.254.169.254"],
    }
)


# -- where webhooks may go -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.1/hook", "private"),
        ("http://localhost:8080/", "loopback"),
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://metadata/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "non-public"),
        ("http://rebound.example.com/", "private"),  # one bad address is enough: the connection may pick it
        ("ftp://portal.example.com/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("https://user:pw@portal.example.com/", "credentials"),
        ("https://portal.example.com/#x", "fragment"),
        ("https://nowhere.example.com/", "does not resolve"),
        ("http://portal.example.com:70000/", "not"),
        ("not a url", "only http and https"),
    ],
)
def test_urls_that_are_refused(url: str, why: str) -> None:
    with pytest.raises(urls.UrlRefused, match=why):
        urls.check(url, urls.parse_allowed([]), NAMES)


def test_public_urls_and_listed_hosts_and_networks_are_allowed() -> None:
    none = urls.parse_allowed([])
    assert urls.check("https://portal.example.com/hooks?x=1", none, NAMES).address == PUBLIC
    allowed = urls.parse_allowed(["127.0.0.1", "::1", "10.0.0.0/8", "hooks.internal", "*.corp"])
    assert str(urls.check("http://localhost:9/", allowed, NAMES).address) == "127.0.0.1"
    assert str(urls.check("http://10.0.0.1/", allowed, NAMES).address) == "10.0.0.1"
    assert str(urls.check("http://[::ffff:10.0.0.1]/", allowed, NAMES).address) == "::ffff:a00:1"
    assert str(urls.check("http://hooks.internal/", allowed, NAMES).address) == "10.9.9.9"
    assert str(urls.check("http://a.corp/", allowed, NAMES).address) == "192.168.1.5"
    with pytest.raises(urls.UrlRefused, match="link-local"):
        urls.check("http://metadata/", allowed, NAMES)  # listing some networks opens only those
    with pytest.raises(urls.UrlRefused):
        urls.check("http://172.16.0.1/", allowed, NAMES)


def test_a_malformed_allow_list_entry_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="http://x"):
        ServiceSettings(webhook_allowed_hosts=["http://x"])


def test_the_request_goes_to_the_checked_address_with_the_hosts_name() -> None:
    target = urls.check("https://portal.example.com:8443/h?a=1", urls.parse_allowed([]), NAMES)
    url, host, extensions = target.request()
    assert str(url) == f"https://{PUBLIC}:8443/h?a=1"
    assert host == {"Host": "portal.example.com:8443"}
    assert extensions == {"sni_hostname": "portal.example.com"}
    v6 = urls.Target("http://h.example/x", "h.example", ipaddress.ip_address("2001:db8::1"))
    assert str(v6.request()[0]) == "http://[2001:db8::1]/x"


# -- signatures ----------------------------------------------------------------------------------------------------


def test_signatures_verify_with_the_standard_webhooks_library() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(signing.secret_key(secret)) == 32
    body = outbox.render({"type": "job.succeeded", "timestamp": "t", "data": {"loss": float("nan"), "név": "ü"}})
    assert json.loads(body)["data"] == {"loss": "NaN", "név": "ü"}
    now = int(datetime.now(UTC).timestamp())
    headers = signing.headers([secret], "msg_1", now, body.encode())
    assert standardwebhooks.Webhook(secret).verify(body.encode(), headers)["type"] == "job.succeeded"
    # during a rotation both secrets sign: a receiver with either verifies
    old = signing.new_secret()
    both = signing.headers([secret, old], "msg_1", now, body.encode())
    assert len(both["webhook-signature"].split(" ")) == 2
    for key in (secret, old):
        standardwebhooks.Webhook(key).verify(body.encode(), both)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing.new_secret()).verify(body.encode(), headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body.encode() + b" ", headers)


# -- which events make webhooks ------------------------------------------------------------------------------------

NOW = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("transition", "expected"),
    [
        (transitions.submitted(), None),
        (transitions.claimed("w", NOW, 30), "job.started"),
        (transitions.finished(JobStatus.SUCCEEDED, NOW), "job.succeeded"),
        (transitions.finished(JobStatus.FAILED, NOW, error={"code": "x", "message": "m", "param": None}), "job.failed"),
        (transitions.finished(JobStatus.CANCELLED, NOW), "job.cancelled"),
        (transitions.handed_back(NOW, {}, None, cancelled=False), None),
        (transitions.handed_back(NOW, {}, None, cancelled=True), "job.cancelled"),
        (transitions.lost_requeued(NOW, 4.0, NOW), None),
        (transitions.lost_failed(NOW, 3), "job.failed"),
        (transitions.lost_cancelled(NOW), "job.cancelled"),
        (transitions.cancelled_while_queued(NOW), "job.cancelled"),
        (transitions.cancel_requested(save_checkpoint=False), None),
        (transitions.resumed(1, {}, "/c"), None),
    ],
)
def test_transitions_that_make_webhooks(transition: transitions.Transition, expected: str | None) -> None:
    assert webhook_type("job", transition.event_for(1)) == expected


def test_engine_events_that_make_webhooks() -> None:
    assert webhook_type("checkpoint", {"v": 1, "step": 2, "path": "/o/checkpoint-2"}) == "job.checkpoint_saved"
    assert webhook_type("eval", {"v": 1, "step": 2, "metrics": {"loss": 1.0}}) == "job.eval"
    assert webhook_type("eval", {"v": 99, "step": 2}) is None  # a format we do not know
    for kind in ("metrics", "progress", "phase", "log", "process", "resumed"):
        assert webhook_type(kind, {"v": 1}) is None


# -- the sender ----------------------------------------------------------------------------------------------------


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")

    @event.listens_for(engine, "connect")
    def _fk(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA foreign_keys=ON")

    Base.metadata.create_all(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    from cryptography.fernet import Fernet

    return ServiceSettings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        secrets_key=Fernet.generate_key().decode(),
        webhook_retry_seconds=10,
        webhook_retry_max_seconds=40,
    )


class Receiver:
    """An in-process transport: answers each request with the next status of ``script`` (then 200)."""

    def __init__(self, script: Callable[[httpx.Request], int] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.script = script or (lambda _: 200)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.script(request), text="ok")

    @property
    def types(self) -> list[str]:
        return [json.loads(r.content)["type"] for r in self.requests]


def setup_endpoint(
    sessions: sessionmaker[Session], settings: ServiceSettings, jobs: int = 2
) -> tuple[str, str, list[str]]:
    with sessions.begin() as session:
        ids = [new_id() for _ in range(jobs)]
        for job_id in ids:
            session.add(Job(id=job_id, project="p", kind="sft", queue="q", config={}, status="running"))
        session.flush()
        endpoint, secret = endpoints.create(
            session,
            settings,
            "p",
            url="https://portal.example.com/hook",
            event_types=EVENT_TYPES,
            description=None,
            enabled=True,
            by=None,
        )
        return endpoint.id, secret, ids


def queue(sessions: sessionmaker[Session], job_id: str, *events: tuple[str, dict[str, Any]]) -> None:
    with sessions.begin() as session:
        outbox.enqueue(session, job_id, list(events))


def deliveries(sessions: sessionmaker[Session]) -> list[WebhookDelivery]:
    with sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.seq)))


def due_now(sessions: sessionmaker[Session]) -> None:
    """Skip the back-off: every pending delivery is due."""
    with sessions.begin() as session:
        for delivery in session.scalars(select(WebhookDelivery)):
            delivery.next_attempt_at = None


def sender_for(settings: ServiceSettings, sessions: sessionmaker[Session], receiver: Receiver) -> Sender:
    return Sender(settings, sessions, resolver=NAMES, transport=httpx.MockTransport(receiver))


def job_event(status: JobStatus, attempt: int = 1) -> tuple[str, dict[str, Any]]:
    return ("job", {"status": status.value, "attempt": attempt})


def test_each_endpoint_gets_a_jobs_events_in_order_through_failures(
    sessions: sessionmaker[Session], settings: ServiceSettings
) -> None:
    _, secret, (a, b) = setup_endpoint(sessions, settings)
    queue(sessions, a, job_event(JobStatus.RUNNING), ("eval", {"v": 1, "step": 2, "metrics": {"loss": 0.5}}))
    queue(sessions, a, ("checkpoint", {"v": 1, "step": 2, "path": "/o/checkpoint-2"}), job_event(JobStatus.SUCCEEDED))
    queue(sessions, b, job_event(JobStatus.RUNNING))
    down = {"on": True}
    receiver = Receiver(lambda r: 503 if down["on"] and json.loads(r.content)["data"]["job_id"] == a else 200)
    sender = sender_for(settings, sessions, receiver)

    # job a's first delivery fails: its later ones wait for it, job b's is not held up
    assert sender.run_once() == 2
    assert sorted(receiver.types) == ["job.started", "job.started"]
    assert sender.run_once() == 0  # a's first waits for its back-off, its others behind it
    for _ in range(2):
        due_now(sessions)
        assert sender.run_once() == 1
    down["on"] = False
    for _ in range(4):
        due_now(sessions)
        sender.run_once()
    of_a = [json.loads(r.content) for r in receiver.requests if json.loads(r.content)["data"]["job_id"] == a]
    assert [m["type"] for m in of_a] == ["job.started"] * 4 + ["job.eval", "job.checkpoint_saved", "job.succeeded"]
    assert of_a[-2]["data"]["checkpoint"] == f"job:{a}/checkpoint-2"
    assert of_a[-3]["data"]["metrics"] == {"loss": 0.5}
    assert all(d.status == "succeeded" for d in deliveries(sessions))
    first = deliveries(sessions)[0]
    ids = {r.headers["webhook-id"] for r in receiver.requests if json.loads(r.content)["data"]["job_id"] == a}
    assert len(ids) == 4
    assert first.id in ids
    with sessions() as session:
        attempts = session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_seq == first.seq)).all()
    assert [x.status_code for x in attempts] == [503, 503, 503, 200]
    assert attempts[0].error == "HTTP 503"
    assert attempts[-1].error is None
    assert attempts[-1].response == "ok"
    for request in receiver.requests:
        standardwebhooks.Webhook(secret).verify(request.content, dict(request.headers))
        assert request.headers["host"] == "portal.example.com"
        assert request.url.host == str(PUBLIC)


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_runs_out(
    sessions: sessionmaker[Session], settings: ServiceSettings
) -> None:
    _, _, (a, _) = setup_endpoint(sessions, settings)
    queue(sessions, a, job_event(JobStatus.RUNNING))
    receiver = Receiver()
    one, two = sender_for(settings, sessions, receiver), sender_for(settings, sessions, receiver)
    claimed = one.claim()
    assert len(claimed) == 1
    assert two.claim() == []
    with sessions.begin() as session:  # the first sender died: its lease runs out
        session.execute(update(WebhookDelivery).values(leased_until=datetime.now(UTC) - timedelta(1)))
    again = two.claim()
    assert [d.id for d in again] == [claimed[0].id]
    two.deliver(again[0])
    one.deliver(claimed[0])  # the late first sender: its attempt is logged, the outcome stays the holder's
    (delivery,) = deliveries(sessions)
    assert delivery.status == "succeeded"
    assert delivery.attempts == 1


def test_backoff_doubles_with_jitter_up_to_its_cap(settings: ServiceSettings) -> None:
    assert [backoff_seconds(settings, n, lambda: 0.5) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 40, 40]
    assert backoff_seconds(settings, 1, lambda: 0.0) == pytest.approx(8)
    assert backoff_seconds(settings, 1, lambda: 1.0) == pytest.approx(12)


def test_a_delivery_fails_at_the_end_of_its_window_and_can_be_redelivered(
    sessions: sessionmaker[Session], settings: ServiceSettings
) -> None:
    endpoint_id, _, (a, _) = setup_endpoint(sessions, settings)
    queue(sessions, a, job_event(JobStatus.SUCCEEDED), job_event(JobStatus.CANCELLED))
    receiver = Receiver(lambda _: 500)
    sender = sender_for(settings, sessions, receiver)
    sender.run_once()
    first = deliveries(sessions)[0]
    assert first.status == "pending"
    assert first.give_up_at is not None
    assert first.next_attempt_at is not None
    assert first.next_attempt_at <= first.give_up_at
    with sessions.begin() as session:  # a day later
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.seq == first.seq)
            .values(give_up_at=datetime.now(UTC) - timedelta(seconds=1), next_attempt_at=None)
        )
    sender.run_once()
    first, second = deliveries(sessions)
    assert first.status == "failed"
    assert first.attempts == 2
    assert second.status == "pending"
    assert second.attempts == 0
    receiver.script = lambda _: 204
    sender.run_once()
    assert deliveries(sessions)[1].status == "succeeded"
    with sessions.begin() as session:
        failed = endpoints.get_delivery(session, endpoint_id, first.id)
        assert failed is not None
        endpoints.redeliver(session, failed)
    sender.run_once()
    first = deliveries(sessions)[0]
    assert first.status == "succeeded"
    assert first.attempts == 3
    assert receiver.requests[-1].headers["webhook-id"] == first.id


def test_an_address_that_became_private_is_not_sent_to(
    sessions: sessionmaker[Session], settings: ServiceSettings
) -> None:
    _, _, (a, _) = setup_endpoint(sessions, settings)
    queue(sessions, a, job_event(JobStatus.RUNNING))
    receiver = Receiver()
    sender = Sender(
        settings,
        sessions,
        resolver=resolver_of({"portal.example.com": ["10.0.0.7"]}),  # DNS changed since registration
        transport=httpx.MockTransport(receiver),
    )
    sender.run_once()
    (delivery,) = deliveries(sessions)
    assert receiver.requests == []
    assert delivery.status == "pending"
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("not sent: portal.example.com resolves to a private address")


def test_a_redirect_is_not_followed(sessions: sessionmaker[Session], settings: ServiceSettings) -> None:
    _, _, (a, _) = setup_endpoint(sessions, settings)
    queue(sessions, a, job_event(JobStatus.RUNNING))

    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": "http://10.0.0.1/"})

    sender = Sender(settings, sessions, resolver=NAMES, transport=httpx.MockTransport(redirect))
    sender.run_once()
    (delivery,) = deliveries(sessions)
    assert delivery.status == "pending"
    assert delivery.last_status_code == 307
    assert delivery.last_error is not None
    assert "redirects are not followed" in delivery.last_error


def test_only_subscribed_and_enabled_endpoints_get_deliveries(
    sessions: sessionmaker[Session], settings: ServiceSettings
) -> None:
    endpoint_id, _, (a, _) = setup_endpoint(sessions, settings)
    with sessions.begin() as session:
        endpoints.create(
            session,
            settings,
            "p",
            url="https://portal.example.com/other",
            event_types=[WebhookEventType.JOB_FAILED.value],
            description=None,
            enabled=True,
            by=None,
        )
        endpoints.create(
            session,
            settings,
            "other-project",
            url="https://portal.example.com/theirs",
            event_types=EVENT_TYPES,
            description=None,
            enabled=True,
            by=None,
        )
    queue(sessions, a, job_event(JobStatus.RUNNING), ("metrics", {"v": 1, "step": 1}))
    assert [(d.endpoint_id, d.event_type) for d in deliveries(sessions)] == [(endpoint_id, "job.started")]
    with sessions.begin() as session:
        found = endpoints.get(session, "p", endpoint_id)
        assert found is not None
        endpoints.update_endpoint(session, found, {"enabled": False})
    queue(sessions, a, job_event(JobStatus.FAILED))
    assert [d.event_type for d in deliveries(sessions)] == ["job.started", "job.failed"]  # only the subscriber
