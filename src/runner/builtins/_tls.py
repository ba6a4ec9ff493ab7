"""What a TLS connection says about its certificates, for the checks that make one."""

from __future__ import annotations

import ssl
import typing
from typing import Any

__all__ = ["earliest_expiry"]


def earliest_expiry(ssl_object: ssl.SSLObject | None) -> float | None:
    """The earliest ``notAfter`` in the chain of a TLS connection, in epoch seconds.

    The verified chain (leaf to trust anchor) when the certificate was
    verified, as blackbox_exporter's ``probe_ssl_last_chain_expiry``: an
    expired extra certificate that the server sends but the chain does not
    use breaks nothing. Without verification, what the server sent.
    """
    if ssl_object is None:
        return None
    # Public from Python 3.13; the same methods exist privately since 3.10.
    target: Any = ssl_object if hasattr(ssl_object, "get_verified_chain") else ssl_object._sslobj  # type: ignore[attr-defined]
    chain: list[Any] = []
    for getter in ("get_verified_chain", "get_unverified_chain"):
        method = getattr(target, getter, None)
        if method is not None:
            try:
                chain = list(method() or ())
            except (ssl.SSLError, ValueError):
                chain = []
        if chain:
            break
    dates = [_not_after(cert.get_info()) for cert in chain]
    if not dates:
        dates = [_not_after(typing.cast(dict[str, Any], ssl_object.getpeercert() or {}))]
    known = [date for date in dates if date is not None]
    return min(known) if known else None


def _not_after(info: dict[str, Any]) -> float | None:
    text = info.get("notAfter")
    if not isinstance(text, str):
        return None
    try:
        return float(ssl.cert_time_to_seconds(text))
    except ValueError:
        return None
