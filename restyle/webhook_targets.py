"""Webhook targets: which URLs a webhook may be sent to, so a client cannot turn the service against its own network.

A webhook URL is chosen by whoever submits a job, and the worker then POSTs to it from inside the deployment;
without a check, ``http://127.0.0.1:6379`` or ``http://169.254.169.254/`` reaches Redis or the cloud metadata
service (SSRF). ``WebhookPolicy.target`` parses the URL, resolves its host and accepts it only if every address
is public, unless the operator allow-listed the host name or a network containing the address
(``RESTYLE_WEBHOOK_ALLOW_HOSTS``). The dispatcher then connects to exactly the addresses that were checked, so a
DNS answer that changes between check and connection (rebinding) changes nothing.

Errors::

    InvalidWebhookUrl (ValueError)   the URL is malformed: scheme, credentials, host, port, characters, length
     └── ForbiddenWebhookTarget      it names or resolves to an address that is not public
    UnresolvedWebhookHost (OSError)  its host does not resolve now (it may later: not a verdict on the URL)
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# ``(host, port) -> addresses``: the system's resolver by default; tests inject their own DNS.
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# What glibc's inet_aton takes for an IPv4 address (2130706433, 0x7f000001, 0177.0.0.1, 127.1), and so what
# getaddrinfo answers without asking DNS: checked as the literal address it is.
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")
# Names that never leave the local network by standard (RFC 6761, RFC 6762, RFC 8375, ICANN's .internal), and
# /etc/hosts' usual localdomain; checked before any DNS query, which would often say nothing about them.
_LOCAL_SUFFIXES = ("localhost", "local", "internal", "home.arpa", "localdomain", "invalid")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class InvalidWebhookUrl(ValueError):
    """The webhook URL cannot be used; the message says what is wrong with it."""


class ForbiddenWebhookTarget(InvalidWebhookUrl):
    """The webhook URL points inside the deployment's network (or somewhere no webhook belongs)."""


class UnresolvedWebhookHost(OSError):
    """The webhook's host name does not resolve right now."""


@dataclass(frozen=True)
class WebhookUrl:
    """A parsed webhook URL: ``host`` is lower-case ASCII (IDNA), without brackets or a trailing dot."""

    url: httpx.URL
    host: str
    port: int

    @property
    def https(self) -> bool:
        return self.url.scheme == "https"


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL and the addresses it may be sent to, in the resolver's order."""

    url: WebhookUrl
    addresses: tuple[IPAddress, ...]
    literal: bool  # the host is an address itself, so there is no name for SNI or certificate checks

    def request_url(self, address: IPAddress) -> httpx.URL:
        """The URL with its host replaced by ``address``, so connecting needs no second (rebindable) lookup."""
        return self.url.url.copy_with(host=str(address))

    @property
    def host_header(self) -> str:
        return self.url.url.netloc.decode("ascii")


def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver's addresses for ``host``; bytes, so Python's IDNA codec never sees the name."""
    try:
        infos = socket.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise UnresolvedWebhookHost(f"the webhook host {host!r} does not resolve ({error})") from error
    return [str(info[4][0]) for info in infos]


def parse_webhook_url(text: str) -> WebhookUrl:
    """Check the URL's shape: absolute http(s), no credentials, a host name or address, a port in range."""
    if len(text) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"the webhook URL is longer than {MAX_URL_LENGTH:,} characters")
    for position, char in enumerate(text):
        if char.isspace() or not char.isprintable():
            raise InvalidWebhookUrl(f"the webhook URL holds a space or control character at position {position}")
    scheme, separator, rest = text.partition("://")
    if not separator or scheme.lower() not in _DEFAULT_PORTS:
        raise InvalidWebhookUrl(f"give an absolute http:// or https:// webhook URL, not {_shorten(text)!r}")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise InvalidWebhookUrl("the webhook URL must not carry credentials (user:password@); sign with the secret")
    _check_port_text(authority)
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as error:  # idna's errors are UnicodeErrors, so ValueErrors
        raise InvalidWebhookUrl(f"the webhook URL is malformed: {error}") from error
    host = url.raw_host.decode("ascii").lower()
    host = host[:-1] if host.endswith(".") else host
    if not host:
        raise InvalidWebhookUrl("the webhook URL has no host")
    if _address(host) is None and not (len(host) <= 253 and _HOST_NAME.fullmatch(host)):
        raise InvalidWebhookUrl(f"the webhook URL's host {_shorten(host)!r} is not a valid host name or address")
    return WebhookUrl(url=url, host=host, port=url.port or _DEFAULT_PORTS[url.scheme])


def _check_port_text(authority: str) -> None:
    """The port as written: ASCII digits in 1–65535 (httpx alone takes ``-1``, ``+80`` and other scripts' digits)."""
    after_host = authority.rpartition("]")[2] if authority.startswith("[") else authority
    _, colon, port = after_host.rpartition(":") if ":" in after_host else ("", "", "")
    if colon and port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise InvalidWebhookUrl(f"the webhook URL's port {_shorten(port)!r} is not a number from 1 to 65535")


def _address(host: str) -> IPAddress | None:
    """The address a host stands for without DNS: an IP literal, or a numeric form the resolver would read as one."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a webhook must not go to ``address``, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (kind := _forbidden_kind(embedded)) is not None:
            return f"{address} embeds {embedded}, {kind}"
    kind = _forbidden_kind(address)
    return None if kind is None else f"{address} is {kind}"


def _forbidden_kind(address: IPAddress) -> str | None:
    """``is_global`` is the base, but Python's table counts multicast and IPv6 site-local as global, so those
    are checked explicitly; the named kinds come first so the message says which rule refused the address."""
    v6 = isinstance(address, ipaddress.IPv6Address)
    kinds: list[tuple[bool, str]] = [
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (where cloud metadata services answer)"),
        (address.is_multicast, "a multicast address"),
        (v6 and address in _UNIQUE_LOCAL, "a unique-local address"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "a site-local address"),
        (not v6 and address in _SHARED, "a carrier-grade NAT address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    ]
    return next((kind for applies, kind in kinds if applies), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class WebhookPolicy:
    """Where webhooks may go: public addresses, plus the operator's allow-list of host names and networks."""

    def __init__(self, allow_hosts: Iterable[str] = (), resolver: Resolver | None = None) -> None:
        self.names: set[str] = set()
        self.networks: list[IPNetwork] = []
        for entry in allow_hosts:
            item = entry.strip().lower().removesuffix(".")
            try:
                self.networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                if "/" in item or not _HOST_NAME.fullmatch(item):
                    raise ValueError(f"webhook_allow_hosts: {entry!r} is neither a host name nor a CIDR") from None
                self.names.add(item)
        self.resolver = resolver  # None: the system's, looked up at each call (tests stand in for DNS there)

    def target(self, text: str) -> WebhookTarget:
        """Parse, resolve and check a webhook URL; every address must be public or allow-listed.

        Raises ``InvalidWebhookUrl`` (``ForbiddenWebhookTarget`` for a refused address), or
        ``UnresolvedWebhookHost`` when the host has no address now.
        """
        url = parse_webhook_url(text)
        literal = _address(url.host)
        if literal is not None:
            addresses: tuple[IPAddress, ...] = (literal,)
        else:
            if url.host not in self.names:
                self._check_name(url.host)
            addresses = self._resolve(url)
        if url.host not in self.names:
            for address in addresses:
                reason = None if self._allowed(address) else forbidden_reason(address)
                if reason is not None:
                    raise ForbiddenWebhookTarget(
                        f"the webhook host {url.host!r} is refused: {reason}; webhooks go to public addresses "
                        "(an operator can allow a host with RESTYLE_WEBHOOK_ALLOW_HOSTS)"
                    )
        return WebhookTarget(url=url, addresses=addresses, literal=literal is not None)

    def _check_name(self, host: str) -> None:
        if any(host == suffix or host.endswith(f".{suffix}") for suffix in _LOCAL_SUFFIXES):
            raise ForbiddenWebhookTarget(
                f"the webhook host {host!r} is a local-only name; webhooks go to public addresses "
                "(an operator can allow a host with RESTYLE_WEBHOOK_ALLOW_HOSTS)"
            )
        if "." not in host:
            raise ForbiddenWebhookTarget(
                f"the webhook host {host!r} is a single-label name, which only a local network resolves; "
                "give a fully qualified name (an operator can allow a host with RESTYLE_WEBHOOK_ALLOW_HOSTS)"
            )

    def _resolve(self, url: WebhookUrl) -> tuple[IPAddress, ...]:
        addresses: dict[IPAddress, None] = {}
        for text in (self.resolver or resolve_host)(url.host, url.port):
            try:
                addresses[ipaddress.ip_address(text)] = None
            except ValueError as error:
                raise UnresolvedWebhookHost(f"the resolver answered {text!r} for {url.host!r}") from error
        if not addresses:
            raise UnresolvedWebhookHost(f"the webhook host {url.host!r} has no address")
        return tuple(addresses)

    def _allowed(self, address: IPAddress) -> bool:
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(candidate in network for candidate in candidates for network in self.networks)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
