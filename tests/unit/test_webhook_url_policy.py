"""The SSRF guard: which URLs and addresses webhooks may reach, and the resolver enforcing it."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from caesar_api.push.adapters.sender import AddressRefused, GuardedResolver, WebhookSender
from caesar_api.push.domain.url_policy import (
    UrlRefused,
    address_refusal,
    literal_address,
    parse_hook_url,
    refused_addresses,
)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/hook",
        "file:///etc/passwd",
        "gopher://example.org",
        "http://",
        "http://user:pw@example.org/",
        "https://example.org/#frag",
        "https://example.org/a b",
        "https://example.org:99999/",
        "example.org/hook",
        "",
        "https://" + "a" * 2100 + ".org/",
        "http://0..0",  # found by the fuzzer: getaddrinfo raised UnicodeError (a 500)
        "https://" + "a" * 64 + ".example.org/",
    ],
)
def test_urls_that_are_not_plain_http_to_a_host_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused):
        parse_hook_url(url)


def test_international_and_trailing_dot_host_names_are_names() -> None:
    assert parse_hook_url("https://bücher.example/hook").host
    assert parse_hook_url("https://hooks.example.org./in").host


def test_a_plain_https_url_is_taken_as_is() -> None:
    assert (
        str(parse_hook_url("https://hooks.example.org:8443/in?x=1"))
        == "https://hooks.example.org:8443/in?x=1"
    )
    with pytest.raises(UrlRefused):
        parse_hook_url(None)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "fe80::1",
        "fc00::1",
        "224.0.0.1",
        "ff02::1",
        "0.0.0.0",
        "::",
        "240.0.0.1",
        "100.64.0.1",  # shared address space (CGNAT)
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",
        "192.0.2.1",  # documentation
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_one_bad_address_refuses_the_whole_answer_unless_private_is_allowed() -> None:
    mixed = [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.1")]
    assert refused_addresses(mixed, allow_private=False) is not None
    assert refused_addresses(mixed, allow_private=True) is None
    assert refused_addresses([], allow_private=True) == "the host has no address"


def test_literal_hosts_are_recognised() -> None:
    assert literal_address("[::1]") == ipaddress.ip_address("::1")
    assert literal_address("127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("example.org") is None


class FixedResolver(AbstractResolver):
    """Answers every name with the given addresses (a rebinding attacker's DNS)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": a, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_the_resolver_refuses_a_name_that_resolves_to_a_private_address() -> None:
    with pytest.raises(AddressRefused):
        await GuardedResolver(allow_private=False, inner=FixedResolver("8.8.8.8", "127.0.0.1")).resolve(
            "evil"
        )
    answer = await GuardedResolver(allow_private=False, inner=FixedResolver("8.8.8.8")).resolve("fine", 443)
    assert [a["host"] for a in answer] == ["8.8.8.8"]
    allowed = await GuardedResolver(allow_private=True, inner=FixedResolver("127.0.0.1")).resolve("local")
    assert [a["host"] for a in allowed] == ["127.0.0.1"]


async def test_the_sender_refuses_literal_private_hosts_without_connecting() -> None:
    sender = WebhookSender(allow_private=False, timeout_s=1)
    try:
        result = await sender.send("http://127.0.0.1:9/hook", b"{}", {})
        assert result.status_code is None
        assert result.refused
        assert await sender.refusal("http://[::1]/") is not None
        assert await sender.refusal("http://localhost/") is not None  # resolves to loopback
    finally:
        await sender.aclose()
