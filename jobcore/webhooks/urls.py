"""Where webhooks may go, so that an endpoint cannot be used to reach the service's own network: http(s) URLs whose
host resolves only to public addresses, or that the operator allows (``webhook_allowed_hosts``: host names, addresses,
networks). Checked when an endpoint is registered or changed and again before every attempt (DNS can change); the
request then goes to the address that was checked (never resolved a second time), and redirects are not followed."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
SETTING = "FINETUNING_WEBHOOK_ALLOWED_HOSTS"
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class UrlRefused(ValueError):
    """A webhook URL that is not allowed; the message says why, for people."""


@dataclass(frozen=True)
class AllowList:
    """The operator's exceptions to "public addresses only"."""

    names: frozenset[str] = frozenset()  # exact host names
    suffixes: tuple[str, ...] = ()  # ".internal" for "*.internal"
    networks: tuple[IPNetwork, ...] = ()

    def host_listed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def address_listed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            if self.address_listed(address.ipv4_mapped):
                return True
        return any(address in network for network in self.networks if network.version == address.version)


def parse_allowed(entries: Sequence[str]) -> AllowList:
    """The allow-list of the settings; ValueError naming an entry that is neither a host name, an address nor a
    network."""
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if entry.startswith("*.") and _HOST_NAME.match(entry[2:]):
            suffixes.append(entry[1:])
        elif _HOST_NAME.match(entry):
            names.add(entry)
        else:
            raise ValueError(
                f"webhook_allowed_hosts: {raw!r} is neither a host name (hooks.internal, *.internal), an address nor "
                "a network (10.0.0.0/8)"
            )
    return AllowList(frozenset(names), tuple(suffixes), tuple(networks))


@dataclass(frozen=True)
class Target:
    """Where a webhook goes: the URL as registered and the checked address to connect to."""

    url: str
    host: str
    address: IPAddress

    def request(self) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
        """The URL with the checked address in place of the host name, and the ``Host`` header and the TLS server
        name (the ``sni_hostname`` extension, which TLS also verifies the certificate against) that keep the host's."""
        parsed = httpx.URL(self.url)
        extensions = {"sni_hostname": parsed.raw_host.decode("ascii")} if parsed.scheme == "https" else {}
        return parsed.copy_with(host=str(self.address)), {"Host": parsed.netloc.decode("ascii")}, extensions


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL; :class:`UrlRefused` when it is not an absolute http(s) URL."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UrlRefused(f"not a valid URL ({exc})") from None
    if parsed.scheme not in SCHEMES:
        raise UrlRefused("only http and https URLs can receive webhooks")
    if not parsed.host:
        raise UrlRefused("the URL has no host")
    if parsed.userinfo:
        raise UrlRefused("the URL holds credentials: leave them out (receivers check the webhook's signature)")
    if parsed.fragment:
        raise UrlRefused("the URL has a fragment (#...): leave it out")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise UrlRefused(f"the port {port} is not a TCP port")
    return parsed.scheme, parsed.host, port


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an address is itself), in the resolver's order."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(f"the host {host} does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])  # an IPv6 zone id is not part of it
        if address not in addresses:
            addresses.append(address)
    return addresses


def _kind(address: IPAddress) -> str | None:
    """What makes ``address`` non-public (None: it is public)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _kind(address.ipv4_mapped)
    for kind in ("loopback", "unspecified", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


def check(url: str, allowed: AllowList, resolver: Resolver = resolve) -> Target:
    """The target of ``url`` when webhooks may go there: its host is listed, or every address it resolves to is public
    or in a listed network. :class:`UrlRefused` otherwise, saying why."""
    _, host, port = split_url(url)
    addresses = resolver(host, port)
    if not addresses:
        raise UrlRefused(f"the host {host} does not resolve")
    if allowed.host_listed(host):
        return Target(url, host, addresses[0])
    for address in addresses:
        kind = _kind(address)
        if kind is not None and not allowed.address_listed(address):
            # the address itself is not told: the answer must not map the internal network for the caller
            named = f"{host} is" if host == str(address) else f"{host} resolves to"
            raise UrlRefused(
                f"{named} a {kind} address: webhooks go to public addresses, or to hosts and networks the service "
                f"lists in {SETTING}"
            )
    return Target(url, host, addresses[0])
