"""Framework integrations, one module per framework; the core never imports them."""

from __future__ import annotations

__all__: list[str] = []
