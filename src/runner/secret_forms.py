"""Every form of a secret that the daemon itself may write.

A ``${TOKEN}`` substituted into a URL comes back percent-encoded (httpx
quotes ``'``, ``"``, ``\\`` and spaces in a URL's user info, path and query);
in a message that repeats a value with ``{value!r}`` it comes back with its
quotes and backslashes escaped; in a JSON document (a webhook body, a log
line rendered twice) JSON-escaped; on the status page HTML-escaped. Masking
only the raw value lets each of those through, so the masker masks them all.
"""

from __future__ import annotations

import html
import json
from urllib.parse import quote, quote_plus

__all__ = ["forms"]

# What a URL may leave unquoted where a secret typically sits (RFC 3986: user
# info, path segment, query), from the strictest to the loosest: Python's quote().
_URL_SAFE = ("", "/", "!$&'()*+,;=:", "!$&'()*+,;=:@", "!$&'()*+,;=:@/?")

# The WHATWG URL standard's percent-encode sets (what pydantic's URL type and
# browsers use), on top of C0 controls and non-ASCII: query, special query,
# path (with and without ^), user info, component.
_QUERY = frozenset(' "#<>')
_WHATWG_SETS = (
    _QUERY,
    _QUERY | {"'"},
    _QUERY | set("?`{}"),
    _QUERY | set("?`{}^"),
    _QUERY | set("?`{}/:;=@[\\]^|"),
    _QUERY | set("?`{}/:;=@[\\]^|$%&+,"),
)


def forms(secret: str) -> set[str]:
    """``secret`` and each of its encodings the daemon may produce (itself included)."""
    found = {secret}
    for safe in _URL_SAFE:
        quoted = quote(secret, safe=safe)
        found.add(quoted)
        found.add(_lower_hex(quoted))
    for chars in _WHATWG_SETS:
        encoded = _percent(secret, chars)
        found.add(encoded)
        found.add(_lower_hex(encoded))
    found.add(quote_plus(secret))
    found.add(quote_plus(secret, safe="!$'()*,;:@/"))
    json_escaped = json.dumps(secret)[1:-1]
    found.add(json_escaped)
    found.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    # JSON of JSON: a rendered line embedded in another one (an alert's text).
    found.add(json.dumps(json_escaped)[1:-1])
    found.add(repr(secret)[1:-1])
    found.add(secret.encode("unicode_escape").decode("ascii"))
    # repr() of a string holding both quote kinds escapes the single quotes.
    found.add(secret.replace("\\", "\\\\").replace("'", "\\'"))
    found.add(html.escape(secret))
    found.add(html.escape(secret, quote=False))
    return found


def _percent(text: str, chars: frozenset[str] | set[str]) -> str:
    """``text`` with ``chars``, controls and non-ASCII percent-encoded (as UTF-8)."""
    out = []
    for char in text:
        if char in chars or not " " <= char <= "~":
            out.append("".join(f"%{b:02X}" for b in char.encode("utf-8")))
        else:
            out.append(char)
    return "".join(out)


def _lower_hex(quoted: str) -> str:
    """``%5C`` as ``%5c``: some clients write percent escapes in lower case."""
    parts = quoted.split("%")
    return parts[0] + "".join("%" + p[:2].lower() + p[2:] for p in parts[1:])
