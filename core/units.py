"""Amounts of memory as people write them (8GiB, 512MiB, 8GB), kept free of torch so that the settings and the
CLI can read a budget without loading it."""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9}
_UNITS |= {"t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int) -> int:
    """'8GiB', '512MiB', '8GB', '1.5GiB' or a number of bytes."""
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"'{text}' is not an amount of memory (write it like 8GiB, 512MiB or 8GB)")
        value, unit = float(match.group(1)), match.group(2).lower()
    amount = int(value * _UNITS[unit])
    if amount <= 0:
        raise ValueError(f"a memory budget must be positive, not {text}")
    return amount


def format_bytes(amount: float) -> str:
    return f"{amount / 2**30:.2f} GiB" if amount >= 2**30 else f"{amount / 2**20:.0f} MiB"
