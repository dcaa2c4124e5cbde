"""Webhook targets: which URLs parse, which addresses are public, and what the operator's allow-list opens."""

from __future__ import annotations

import contextlib
import ipaddress
import random
from collections.abc import Sequence

import pytest

from restyle.webhook_targets import (
    ForbiddenWebhookTarget,
    InvalidWebhookUrl,
    UnresolvedWebhookHost,
    WebhookPolicy,
    forbidden_reason,
    parse_webhook_url,
    resolve_host,
)
from tests.support.webhook_urls import FORBIDDEN, MALFORMED, fuzzed


def no_dns(host: str, port: int) -> Sequence[str]:
    pytest.fail(f"{host} should have been decided without asking DNS")


def public_dns(host: str, port: int) -> Sequence[str]:
    return ["93.184.215.14"]


def dns(answers: dict[str, list[str]]) -> WebhookPolicy:
    return WebhookPolicy(resolver=lambda host, port: answers[host])


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00::1", "unique-local"),
        ("fc00::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("224.0.1.1", "multicast"),
        ("ff0e::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "private"),  # documentation range
        ("2001:db8::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated
        ("64:ff9b::808:808", "reserved"),  # NAT64 even of a public address: inside ::/8, on purpose
    ],
)
def test_addresses_inside_a_network_are_forbidden(address: str, kind: str) -> None:
    reason = forbidden_reason(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("numeric", ["2130706433", "0x7f000001", "127.1"])
def test_numeric_host_forms_are_read_as_the_address_the_system_resolver_makes_of_them(numeric: str) -> None:
    assert resolve_host(numeric, 80) == ["127.0.0.1"]
    with pytest.raises(ForbiddenWebhookTarget, match=r"127\.0\.0\.1 is a loopback address"):
        WebhookPolicy(resolver=no_dns).target(f"http://{numeric}/hook")


@pytest.mark.parametrize("url", FORBIDDEN)
def test_every_forbidden_form_is_refused_without_dns(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl):
        WebhookPolicy(resolver=no_dns).target(url)


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_urls_are_invalid(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl):
        parse_webhook_url(url)


def test_credentials_are_refused() -> None:
    with pytest.raises(InvalidWebhookUrl, match="credentials"):
        parse_webhook_url("https://user:secret@hooks.example.com/")


def test_parsing_normalises_the_host_and_fills_in_the_port() -> None:
    url = parse_webhook_url("HTTPS://Hooks.Example.COM./x?y=1")
    assert (url.host, url.port, url.https) == ("hooks.example.com", 443, True)


def test_parsing_raises_nothing_but_invalid_webhook_url() -> None:
    policy = WebhookPolicy(resolver=public_dns)
    for text in fuzzed(3000, seed=7):
        with contextlib.suppress(InvalidWebhookUrl):
            policy.target(text)


def test_random_characters_raise_nothing_but_invalid_webhook_url() -> None:
    generator = random.Random(3)
    policy = WebhookPolicy(resolver=public_dns)
    for _ in range(3000):
        tail = "".join(
            chr(generator.choice([generator.randint(0, 0x7F), generator.randint(0, 0x10FFFF)])) for _ in range(12)
        )
        with contextlib.suppress(InvalidWebhookUrl):
            policy.target(generator.choice(["http://", "https://", "http://[", ""]) + tail)


def test_every_resolved_address_must_be_public() -> None:
    policy = dns({"hooks.example.com": ["93.184.215.14", "2606:2800:21f::1", "::ffff:10.0.0.1"]})
    with pytest.raises(ForbiddenWebhookTarget, match=r"embeds 10\.0\.0\.1"):
        policy.target("https://hooks.example.com/hook")


def test_a_public_name_targets_its_addresses_with_its_own_host_header() -> None:
    target = dns({"hooks.example.com": ["93.184.215.14", "2606:2800:21f::1"]}).target(
        "https://hooks.example.com:8443/hook?x=1"
    )
    assert [str(address) for address in target.addresses] == ["93.184.215.14", "2606:2800:21f::1"]
    assert str(target.request_url(target.addresses[1])) == "https://[2606:2800:21f::1]:8443/hook?x=1"
    assert target.host_header == "hooks.example.com:8443"
    assert not target.literal


def test_local_only_and_single_label_names_are_refused_without_dns() -> None:
    policy = WebhookPolicy(resolver=no_dns)
    for url in ["http://localhost/", "http://api.localhost/", "http://metadata.google.internal/", "http://nas.local/"]:
        with pytest.raises(ForbiddenWebhookTarget, match="local-only name"):
            policy.target(url)
    with pytest.raises(ForbiddenWebhookTarget, match="single-label"):
        policy.target("http://redis:6379/")


def test_a_name_that_does_not_resolve_is_unresolved_not_invalid() -> None:
    def nowhere(host: str, port: int) -> Sequence[str]:
        raise UnresolvedWebhookHost(host)

    with pytest.raises(UnresolvedWebhookHost):
        WebhookPolicy(resolver=nowhere).target("https://hooks.example.com/")
    with pytest.raises(UnresolvedWebhookHost):
        dns({"hooks.example.com": []}).target("https://hooks.example.com/")
    with pytest.raises(UnresolvedWebhookHost):
        dns({"hooks.example.com": ["not an address"]}).target("https://hooks.example.com/")


def test_an_allow_listed_name_may_resolve_anywhere() -> None:
    policy = WebhookPolicy(["Receiver."], resolver=lambda host, port: ["10.0.0.5"])
    assert [str(address) for address in policy.target("http://receiver:8080/hook").addresses] == ["10.0.0.5"]


def test_an_allow_listed_network_opens_only_the_addresses_inside_it() -> None:
    policy = WebhookPolicy(["10.1.0.0/16", "fd00:1::/32"], resolver=no_dns)
    policy.target("http://10.1.2.3/hook")
    policy.target("http://[::ffff:10.1.2.3]/hook")
    policy.target("http://[fd00:1::5]/hook")
    with pytest.raises(ForbiddenWebhookTarget):
        policy.target("http://10.2.0.1/hook")


def test_an_allow_list_entry_that_is_neither_a_name_nor_a_network_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="webhook_allow_hosts"):
        WebhookPolicy(["10.0.0.0/33"])
