"""Which webhook URLs the api may call (pure): the SSRF guard's rules.

A webhook makes the api send requests wherever a user says, from inside the
deployment's network, so a URL must name a public address: one resolving to loopback,
private, link-local (cloud metadata at 169.254.169.254), multicast, reserved, shared
(CGNAT) or unspecified addresses is refused, unless the operator allows private
addresses (``CAESAR_WEBHOOKS_ALLOW_PRIVATE``, as the tests do on loopback). The rule is
applied at registration and again to the addresses resolved at delivery, which are
then the only ones connected to, so a name that re-resolves elsewhere (DNS rebinding)
gains nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from yarl import URL

SCHEMES: Final = frozenset({"http", "https"})
URL_MAX: Final = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """A webhook URL the api will not call; the message says why (shown to the user)."""


def parse_hook_url(raw: object) -> URL:
    """An absolute http(s) URL with a host, no credentials and no fragment; :class:`UrlRefused` otherwise."""
    if not isinstance(raw, str) or not raw:
        raise UrlRefused("required: an absolute http or https URL")
    if len(raw) > URL_MAX:
        raise UrlRefused(f"longer than {URL_MAX} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in raw):
        raise UrlRefused("contains whitespace or control characters")
    try:
        url = URL(raw)
    except ValueError:
        raise UrlRefused("not a URL") from None
    if url.scheme not in SCHEMES:
        raise UrlRefused("only http and https URLs are called")
    if not url.host:
        raise UrlRefused("the URL has no host")
    if literal_address(url.host) is None and not is_host_name(url.host):
        raise UrlRefused("the host is not a valid DNS name")
    if url.user is not None or url.password is not None:
        raise UrlRefused("credentials in the URL are not accepted (the signature authenticates the api)")
    if url.fragment:
        raise UrlRefused("the URL has a fragment")
    try:
        _ = url.port
    except ValueError:
        raise UrlRefused("invalid port") from None
    return url


def is_host_name(host: str) -> bool:
    """Whether ``host`` is a name the resolver can be asked about (RFC 1035 lengths, IDNA).

    Checked here, not left to the resolver: ``0..0`` or a 64-character label makes the
    system's ``getaddrinfo`` raise ``UnicodeError`` rather than say "no such host".
    """
    try:
        encoded = host.rstrip(".").encode("idna")
    except UnicodeError:
        return False
    labels = encoded.split(b".")
    return 0 < len(encoded) <= 253 and all(0 < len(label) <= 63 for label in labels)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally (``127.0.0.1``, ``[::1]``), else ``None``."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_refusal(address: IPAddress) -> str | None:
    """Why the api must not connect to ``address`` (``None``: a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return f"{address} is a {name} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def refused_addresses(addresses: Iterable[IPAddress], *, allow_private: bool) -> str | None:
    """Why none of ``addresses`` may be called (any one refused refuses all), or ``None``.

    All of them must pass: a name answering with one public and one private address is
    refused rather than filtered, since the client would pick either.
    """
    found = list(addresses)
    if not found:
        return "the host has no address"
    if allow_private:
        return None
    for address in found:
        reason = address_refusal(address)
        if reason is not None:
            return reason
    return None
