"""Standard Webhooks signatures (https://www.standardwebhooks.com): each request carries ``webhook-id`` (the message
id, the same on every attempt: receivers deduplicate on it), ``webhook-timestamp`` (Unix seconds of the attempt) and
``webhook-signature``: ``v1,`` + base64 of HMAC-SHA256 over ``{id}.{timestamp}.{body}``, keyed with the secret's bytes
(the base64 after ``whsec_``). During a rotation the header holds one signature per valid secret, space-separated.

Secrets are stored encrypted with the project secrets' key (:func:`jobcore.secrets.cipher`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from jobcore.secrets import cipher
from jobcore.settings import ServiceSettings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
CONTENT_TYPE = "application/json"
USER_AGENT = "silogen-finetuning-webhooks/1"


def new_secret() -> str:
    """A new signing secret, ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}." + body>``."""
    digest = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt: the message id, the attempt's time, a signature per secret (the newest first)."""
    return {
        "content-type": CONTENT_TYPE,
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_),
    }


def encrypt(settings: ServiceSettings, secret: str) -> bytes:
    return cipher(settings).encrypt(secret.encode("ascii"))


def decrypt(settings: ServiceSettings, ciphertext: bytes) -> str:
    """The secret; ``cryptography.fernet.InvalidToken`` when this process has another key than the one that
    encrypted it."""
    return cipher(settings).decrypt(ciphertext).decode("ascii")
