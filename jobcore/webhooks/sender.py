"""The webhook sender: claims due deliveries, sends them, records every attempt, retries failures with back-off.

Each API process and each worker runs one (:func:`start_sender_thread`); any number may run at once. A sender claims
a batch with ``SELECT ... FOR UPDATE SKIP LOCKED`` (Postgres; SQLite serialises writers) and a lease (``leased_until``
and a token), sends outside the transaction, then records the attempt; only the token's holder updates the delivery,
so a sender that outlived its lease cannot undo a newer attempt's outcome. A delivery whose lease ran out (its sender
died) is claimed again: at least once, never lost.

Order: a delivery is not claimed while an older one for the same endpoint and job is still pending, so an endpoint
receives a job's events in the order they happened (retries included); jobs do not wait for each other.

Retries: after the n-th failure in a row the delivery waits ``webhook_retry_seconds`` x 2^(n-1) (at most
``webhook_retry_max_seconds``, +-20 % jitter) until ``webhook_retry_window_seconds`` after its first attempt; the
attempt at the end of the window is its last, then it is ``failed``. A 2xx answer is a success; anything else
(another status, a redirect: never followed, a timeout, a refused connection, an address no longer allowed) fails.

Time: the database's clock on Postgres (so senders on machines whose clocks disagree still agree on leases and due
times), this process' UTC clock on SQLite."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography.fernet import InvalidToken
from sqlalchemy import Engine, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from jobcore.db import make_engine, transaction
from jobcore.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from jobcore.settings import ServiceSettings
from jobcore.webhooks import signing, urls
from jobcore.webhooks.outbox import FAILED, PENDING, SUCCEEDED

logger = logging.getLogger(__name__)

BATCH = 16  # deliveries one sender claims at once (each is the oldest pending of its endpoint and job)
PARALLEL = 8  # sent at once
EXCERPT_BYTES = 1000  # of an answer's body kept in the log; the rest is never read
ERROR_CHARS = 500
LEASE_MARGIN_S = 30.0
PRUNE_EVERY_S = 3600.0
JITTER = 0.2


@dataclass(frozen=True)
class Due:
    """A claimed delivery and what sending it needs."""

    seq: int
    id: str
    url: str
    body: str
    token: str
    failures: int
    give_up_at: datetime
    secrets: tuple[bytes, ...]  # encrypted: the current secret, then a previous one still valid


@dataclass(frozen=True)
class Outcome:
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    response: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def clock(session: Session) -> datetime:
    """Now, by the database's clock on Postgres, by this process' elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.now()))
        if isinstance(value, datetime):
            return value
    return datetime.now(UTC)


def backoff_seconds(settings: ServiceSettings, failures: int, rand: Callable[[], float] = random.random) -> float:
    """The wait after the ``failures``-th failure in a row: doubled each time, capped, with +-20 % jitter."""
    base = min(settings.webhook_retry_seconds * 2 ** max(failures - 1, 0), settings.webhook_retry_max_seconds)
    return base * (1 - JITTER + 2 * JITTER * rand())


class Sender:
    """Sends due deliveries; :meth:`run_once` is one pass, :meth:`run` the loop."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: sessionmaker[Session],
        *,
        resolver: urls.Resolver = urls.resolve,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.resolver = resolver
        self.allowed = urls.parse_allowed(settings.webhook_allowed_hosts)
        # no connection is reused: each request goes to the address checked for it, with its own TLS server name
        self.client = httpx.Client(
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: it would resolve the host itself
            limits=httpx.Limits(max_keepalive_connections=0),
            transport=transport,
        )
        self._last_prune = 0.0

    def close(self) -> None:
        self.client.close()

    # -- one pass ----------------------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim the due deliveries (a batch), send them, record the outcomes; returns how many were sent."""
        claimed = self.claim()
        if not claimed:
            return 0
        if len(claimed) == 1:
            self.deliver(claimed[0])
        else:
            with ThreadPoolExecutor(max_workers=min(PARALLEL, len(claimed)), thread_name_prefix="webhook") as pool:
                list(pool.map(self.deliver, claimed))
        return len(claimed)

    def claim(self, limit: int = BATCH) -> list[Due]:
        lease_s = self.settings.webhook_timeout_seconds * 2 + LEASE_MARGIN_S
        token = str(uuid.uuid4())
        with transaction(self.sessions) as session:
            now = clock(session)
            d = WebhookDelivery
            older = aliased(WebhookDelivery)
            blocked = exists().where(
                older.endpoint_id == d.endpoint_id, older.job_id == d.job_id, older.status == PENDING, older.seq < d.seq
            )
            free = or_(d.leased_until.is_(None), d.leased_until < now)
            due = or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now)
            query = (
                select(d.seq)
                .join(WebhookEndpoint, WebhookEndpoint.id == d.endpoint_id)
                .where(d.status == PENDING, WebhookEndpoint.enabled.is_(True), due, free, ~blocked)
                .order_by(d.seq)
                .limit(limit)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=d)
            seqs = list(session.scalars(query))
            if not seqs:
                return []
            window = timedelta(seconds=self.settings.webhook_retry_window_seconds)
            # conditional on the lease still being free: where rows are not locked (SQLite), two senders cannot both
            # take one
            taken = set(
                session.scalars(
                    update(d)
                    .where(d.seq.in_(seqs), d.status == PENDING, free)
                    .values(
                        leased_until=now + timedelta(seconds=lease_s),
                        lease_token=token,
                        give_up_at=func.coalesce(d.give_up_at, now + window),
                    )
                    .returning(d.seq)
                    .execution_options(synchronize_session=False)
                )
            )
            rows = session.execute(
                select(
                    d.seq,
                    d.id,
                    d.body,
                    d.failures,
                    d.give_up_at,
                    WebhookEndpoint.url,
                    WebhookEndpoint.secret_ciphertext,
                    WebhookEndpoint.previous_secret_ciphertext,
                    WebhookEndpoint.previous_secret_expires_at,
                )
                .join(WebhookEndpoint, WebhookEndpoint.id == d.endpoint_id)
                .where(d.seq.in_(taken))
                .order_by(d.seq)
            ).all()
        claimed = []
        for row in rows:
            secrets = [row.secret_ciphertext]
            expires = _aware(row.previous_secret_expires_at)
            if row.previous_secret_ciphertext is not None and expires is not None and expires > now:
                secrets.append(row.previous_secret_ciphertext)
            give_up = _aware(row.give_up_at) or now + window
            claimed.append(Due(row.seq, row.id, row.url, row.body, token, row.failures, give_up, tuple(secrets)))
        return claimed

    def deliver(self, due: Due) -> None:
        try:
            outcome = self.send(due)
        except Exception as exc:  # a bug must not stop the loop; the attempt is recorded as failed
            logger.exception("webhook %s: sending failed unexpectedly", due.id)
            outcome = Outcome(datetime.now(UTC), 0, error=_short(f"{type(exc).__name__}: {exc}"))
        try:
            self.record(due, outcome)
        except Exception:  # the database is down: the lease runs out and the delivery is sent again
            logger.warning("webhook %s: could not record its attempt", due.id, exc_info=True)

    def send(self, due: Due) -> Outcome:
        """One attempt: check where the URL leads now, sign, POST to the checked address."""
        started_at = datetime.now(UTC)
        start = time.monotonic()

        def outcome(**fields: Any) -> Outcome:
            return Outcome(started_at, int((time.monotonic() - start) * 1000), **fields)

        try:
            target = urls.check(due.url, self.allowed, self.resolver)
        except urls.UrlRefused as exc:
            return outcome(error=_short(f"not sent: {exc}"))
        try:
            secrets = [signing.decrypt(self.settings, ciphertext) for ciphertext in due.secrets]
        except InvalidToken:
            return outcome(
                error="not sent: the signing secret cannot be decrypted with this process' key: give the API and "
                "every worker the same FINETUNING_SECRETS_KEY"
            )
        body = due.body.encode("utf-8")
        url, host_header, extensions = target.request()
        headers = {**signing.headers(secrets, due.id, int(time.time()), body), **host_header}
        headers["accept-encoding"] = "identity"  # only an excerpt of the answer is read
        try:
            with self.client.stream("POST", url, content=body, headers=headers, extensions=extensions) as response:
                excerpt = _excerpt(response)
                code = response.status_code
        except httpx.TimeoutException:
            return outcome(error=f"timed out after {self.settings.webhook_timeout_seconds:g} s")
        except httpx.HTTPError as exc:
            return outcome(error=_short(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
        error = None
        if 300 <= code < 400:
            error = f"HTTP {code}: redirects are not followed (register the URL it leads to)"
        elif not 200 <= code < 300:
            error = f"HTTP {code}"
        return outcome(status_code=code, error=error, response=excerpt)

    def record(self, due: Due, outcome: Outcome) -> None:
        """The attempt in the log; the delivery succeeded, waits for its next attempt, or failed for good. Only the
        holder of the claim's token changes the delivery."""
        d = WebhookDelivery
        with transaction(self.sessions) as session:
            now = clock(session)
            session.execute(
                insert(WebhookAttempt).values(
                    delivery_seq=due.seq,
                    attempted_at=outcome.started_at,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                    response=outcome.response,
                )
            )
            values: dict[str, Any] = {
                "attempts": d.attempts + 1,
                "last_attempt_at": outcome.started_at,
                "last_status_code": outcome.status_code,
                "last_error": outcome.error,
                "leased_until": None,
                "lease_token": None,
            }
            if outcome.ok:
                values.update(status=SUCCEEDED, delivered_at=now, failures=0, next_attempt_at=None)
            else:
                failures = due.failures + 1
                retry_at = min(now + timedelta(seconds=backoff_seconds(self.settings, failures)), due.give_up_at)
                if now >= due.give_up_at:
                    values.update(status=FAILED, failures=failures, next_attempt_at=None)
                else:
                    values.update(failures=failures, next_attempt_at=retry_at)
            session.execute(
                update(d)
                .where(d.seq == due.seq, d.lease_token == due.token)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    # -- upkeep ------------------------------------------------------------------------------------------------------

    def prune(self) -> int:
        """Remove finished deliveries (and their attempts) older than ``webhook_log_retention_days``."""
        days = self.settings.webhook_log_retention_days
        if not days:
            return 0
        with transaction(self.sessions) as session:
            cutoff = clock(session) - timedelta(days=days)
            old = and_(WebhookDelivery.status.in_((SUCCEEDED, FAILED)), WebhookDelivery.created_at < cutoff)
            # their attempts go with them (ON DELETE CASCADE)
            result = session.execute(delete(WebhookDelivery).where(old).execution_options(synchronize_session=False))
            return int(getattr(result, "rowcount", 0) or 0)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: send what is due; wait ``webhook_poll_seconds`` when nothing was."""
        failing = False
        while not stop.is_set():
            try:
                if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
                    self._last_prune = time.monotonic()
                    self.prune()
                sent = self.run_once()
                failing = False
            except Exception:  # the database is down: try again later (told once, not at every poll)
                logger.log(logging.DEBUG if failing else logging.WARNING, "webhook sender pass failed", exc_info=True)
                failing, sent = True, 0
            if not sent:
                stop.wait(self.settings.webhook_poll_seconds)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes (they were stored in UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _short(text: str) -> str:
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def _excerpt(response: httpx.Response) -> str | None:
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= EXCERPT_BYTES:
            break
    return data[:EXCERPT_BYTES].decode("utf-8", errors="replace") or None


def sender_engine(database_url: str) -> Engine:
    """A small pool of the sender's own; a process that forks (Celery's main process) leaves it to the parent."""
    engine = make_engine(database_url, pool_size=1)
    ref = weakref.ref(engine)

    def _in_child() -> None:
        forked = ref()
        if forked is not None:
            forked.dispose(close=False)  # the parent's connections are the parent's

    os.register_at_fork(after_in_child=_in_child)
    return engine


def start_sender_thread(settings: ServiceSettings) -> threading.Event:
    """Run a :class:`Sender` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        engine = sender_engine(settings.database_url)
        sender = Sender(settings, sessionmaker(engine, expire_on_commit=False))
        try:
            sender.run(stop)
        finally:
            sender.close()
            engine.dispose()

    threading.Thread(target=loop, name="webhook-sender", daemon=True).start()
    return stop
