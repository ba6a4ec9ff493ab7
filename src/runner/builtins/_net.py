"""Small network helpers the built-in checks and services share."""

from __future__ import annotations

__all__ = ["format_address"]


def format_address(host: str, port: int) -> str:
    """``127.0.0.1:8001``, ``[::1]:8001``: host and port as a person writes them."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
