"""Engine parameters sized for the tiny test pictures, so that one run takes well under a second."""

from __future__ import annotations

from typing import Any

from core.params import StyleParams

SMALL: dict[str, Any] = {"size": 48, "iterations": 12, "multiscale": False}


def params(**overrides: Any) -> StyleParams:
    return StyleParams(**{**SMALL, **overrides})
