"""The one rule for what a credential looks like, and the masking every way out applies (API responses, events,
log lines, generate outputs, our own logs): a new field is covered without anyone remembering to add it.

Three signs, any of which masks a value:
- where it sits: the value of a key whose name says it holds a credential (``password``, ``secret``, ``api_key``,
  ``access_key``, ``credential``, ``authorization``, and ``token`` as a field of its own: ``token``, ``hf_token``,
  ``access_token``; not ``pad_token`` or ``max_new_tokens``, which are settings);
- what it is: the user information of a URI (``https://alice:<password>@host`` keeps ``alice``);
- what it looks like: the formats of well-known tokens (Hugging Face, AWS access key ids, GitHub, OpenAI-style and
  Slack tokens, bearer authorization values).

References to a project's secrets (``${secrets.NAME}``) are not credentials and are left as they are."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "***"

SECRET_REFERENCE = re.compile(r"\$\{secrets\.([A-Za-z_][A-Za-z0-9_]{0,63})\}")
"""How a config names a project secret: ``${secrets.MLFLOW_PASSWORD}`` anywhere in a string."""

# words that make a key a credential's, wherever they appear in it
_SECRET_WORDS = {"password", "passwd", "pwd", "secret", "credential", "credentials", "apikey", "authorization"}
# pairs of words that do (api_key, access-key, privateKey)
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("auth", "token")}
# "token" keys that are credentials: alone or after one of these words
_TOKEN_OWNERS = {"", "hf", "auth", "access", "api", "bearer", "refresh", "id", "session", "github", "gitlab", "hub"}

_URI_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/@:]*)(?::(?P<password>[^\s/@]*))?@")
_TOKEN_FORMATS = re.compile(
    r"\b(?:"
    r"hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"  # GitHub
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|sk-(?:proj-)?[A-Za-z0-9_\-]{20,}"  # OpenAI-style API keys
    r"|xox[baprs]-[A-Za-z0-9\-]{10,}"  # Slack
    r")\b"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")
# key=value / key: value pairs in free text (a log line echoing a setting)
_TEXT_PAIR = re.compile(
    r"(?i)\b(?P<key>[A-Za-z0-9_\-]*(?:password|passwd|secret|api[_\-]?key|access[_\-]?key|private[_\-]?key|token)"
    r"[A-Za-z0-9_\-]*)(?P<sep>\s*[=:]\s*['\"]?)(?P<value>[^\s'\",;&}]+)"
)


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def is_secret_key(key: str) -> bool:
    """Whether a field named ``key`` holds a credential (see the module's rule)."""
    words = _words(key)
    if not words:
        return False
    if _SECRET_WORDS & set(words):
        return True
    if any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False)):
        return True
    if words[-1] == "token":
        owner = "".join(words[:-1]) if len(words) <= 2 else "-"
        return owner in _TOKEN_OWNERS
    return False


# values this process knows to be secrets (resolved from ${secrets.NAME}): masked wherever they appear, whatever field
# they were put in
_known: set[str] = set()
MIN_KNOWN_LENGTH = 4  # a shorter value would mask ordinary text


def remember(values: Iterable[str]) -> None:
    """Mask these exact values from now on in this process (secrets it was given)."""
    _known.update(v for v in values if len(v) >= MIN_KNOWN_LENGTH)


def redact_text(text: str) -> str:
    """``text`` with known secrets, URI passwords, well-known token formats, bearer values and ``password=...``
    pairs masked."""
    if not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    text = _URI_USERINFO.sub(_mask_userinfo, text)
    text = _TOKEN_FORMATS.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _TEXT_PAIR.sub(_mask_pair, text)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, password = match["user"], match["password"]
    if password is None:
        # a lone user part is often a token (https://<token>@github.com); a plain name stays readable
        return f"{match['scheme']}{MASK}@" if _looks_like_token(user) else match.group(0)
    if SECRET_REFERENCE.fullmatch(password):
        return match.group(0)
    return f"{match['scheme']}{user}:{MASK}@"


def _mask_pair(match: re.Match[str]) -> str:
    key = match["key"]
    if not is_secret_key(key) or SECRET_REFERENCE.fullmatch(match["value"]) or match["value"] == MASK:
        return match.group(0)
    return f"{key}{match['sep']}{MASK}"


def _looks_like_token(value: str) -> bool:
    return len(value) >= 16 and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` (JSON-like: dicts, lists, strings, numbers) with every credential masked: the values of
    credential-named keys (strings only: a flag such as ``use_auth_token: true`` stays), and the text rule on every
    other string."""
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key and is_secret_key(key) and value and not SECRET_REFERENCE.fullmatch(value):
            return MASK
        return redact_text(value)
    return value


def substitute(value: Any, lookup: Callable[[str], str | None], loc: str = "") -> tuple[Any, list[str]]:
    """``value`` with each ``${secrets.NAME}`` replaced by ``lookup(NAME)``; also the locations (with the name) of
    references ``lookup`` did not know, which are left as they are."""
    missing: list[str] = []

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str) and "${secrets." in node:

            def one(match: re.Match[str]) -> str:
                found = lookup(match[1])
                if found is None:
                    missing.append(f"{where}: {match[1]}")
                    return match.group(0)
                return found

            return SECRET_REFERENCE.sub(one, node)
        return node

    return walk(value, loc), missing


def references(value: Any, loc: str = "") -> list[tuple[str, str]]:
    """Every ``(location, secret name)`` referenced in ``value``."""
    found: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            found += references(v, f"{loc}.{k}" if loc else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += references(v, f"{loc}[{i}]")
    elif isinstance(value, str):
        found += [(loc, name) for name in SECRET_REFERENCE.findall(value)]
    return found


def secrets_from_environment(data: Any, environ: Mapping[str, str], prefix: str) -> Any:
    """``data`` (a loaded config) with each ``${secrets.NAME}`` replaced by ``environ[prefix + NAME]``; the values
    are remembered for masking. A reference without its variable raises a ``KeyError`` naming the location and the
    variable to set."""
    values: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        value = environ.get(prefix + name)
        if value is not None:
            values[name] = value
        return value

    resolved, missing = substitute(data, lookup)
    if missing:
        where, _, name = missing[0].rpartition(": ")
        raise KeyError(f"{where}: secret {name} is not set: export {prefix}{name} (the service sets it for its jobs)")
    remember(values.values())
    return resolved


def lift(value: Any, name_for: Callable[[str], str], key: str = "") -> tuple[Any, dict[str, str]]:
    """``value`` with every credential the rule finds replaced by a reference ``${secrets.<name_for(secret)>}``, and
    the ``{name: secret}`` taken out: what a config typed inline becomes before it is stored. A URI keeps its user
    name (only the password is taken); a credential-named field is taken whole."""
    taken: dict[str, str] = {}

    def ref(secret: str) -> str:
        name = name_for(secret)
        taken[name] = secret
        return f"${{secrets.{name}}}"

    def text(node: str) -> str:
        def userinfo(match: re.Match[str]) -> str:
            password = match["password"]
            if not password or SECRET_REFERENCE.fullmatch(password):
                return match.group(0)
            return f"{match['scheme']}{match['user']}:{ref(password)}@"

        node = _URI_USERINFO.sub(userinfo, node)
        return _TOKEN_FORMATS.sub(lambda m: ref(m.group(0)), node)

    def walk(node: Any, at: str) -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v, str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, at) for v in node]
        if isinstance(node, str) and node:
            if at and is_secret_key(at) and not SECRET_REFERENCE.search(node):
                return ref(node)
            return text(node)
        return node

    return walk(value, key), taken
