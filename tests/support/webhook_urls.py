"""Webhook URLs that must be refused, shared by the unit tests of the policy and the API tests of submission."""

from __future__ import annotations

import random

FORBIDDEN = [
    "http://127.0.0.1/hook",
    "http://localhost/hook",
    "http://localhost./hook",
    "http://[::1]/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",
    "http://127.1/hook",
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.0.1/hook",
    "http://100.64.0.1/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fec0::1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://redis:6379/",
    "http://printer.local/",
    "http://127.0.0.1:6379/",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[64:ff9b::7f00:1]/hook",
    "http://[2002:a9fe:a9fe::]/hook",
    "http://224.0.0.1/hook",
    "http://[ff02::1]/hook",
    "http://255.255.255.255/hook",
    "https://user:secret@hooks.example.com/hook",
    "https://token@hooks.example.com/hook",
]

MALFORMED = [
    "http://[::1",
    "http://[::1/hook",
    "http://exa\x00mple.com/hook",
    "http://example.com/\x00",
    "http://exa mple.com/hook",
    " http://example.com/hook",
    "http://example.com/hook\n",
    "http://example.com/hook\tx",
    "https://example.com/" + "a" * 5000,
    "http://" + "a" * 300 + ".com/",
    "http://" + "a" * 64 + ".com/",
    "ftp://example.org/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "javascript:alert(1)",
    "data:text/plain,hi",
    "//example.com/hook",
    "example.com/hook",
    "http:/example.com",
    "http://",
    "https://:443/",
    "http://example.com:0/",
    "http://example.com:65536/",
    "http://example.com:-1/",
    "http://example.com:+80/",
    "http://example.com:8o/",
    "http://[v1.x]/",
    "http://[::1]x/",
    "http://xn--.com/",
    "http://%7f.com/",
    "http://exa_mple..com/",
    "http://\u2603.com/",
    "http://\ufeffexample.com/",
    "http://example.com\\@127.0.0.1/",
]


def fuzzed(count: int, seed: int = 12) -> list[str]:
    """Strings assembled from the pieces URL parsers trip on, so most are almost URLs."""
    pieces = [
        "http://", "https://", "HTTP://", "ftp://", "://", "[", "]", "::1", "::ffff:", "127.0.0.1", "0x7f", ".",
        ":", "@", "%", "%00", "%zz", "#", "?", "/", "\\", "\x00", " ", "\t", "\u2603", "\ufeff", "\u0663", "xn--",
        "example.com", "a" * 70, "-", "_", "80", "65536", "[fe80::1%25eth0]", "user:pw", "..", "\u00e4",
    ]  # fmt: skip
    generator = random.Random(seed)
    return ["".join(generator.choices(pieces, k=generator.randint(1, 8))) for _ in range(count)]
