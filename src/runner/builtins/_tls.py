"""What a TLS connection says about its certificates, for the checks that make one."""

from __future__ import annotations

import ssl
import typing
from typing import Any

from runner.builtins._compat import verified_chain_info

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
    dates = [_not_after(info) for info in verified_chain_info(ssl_object)]
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
