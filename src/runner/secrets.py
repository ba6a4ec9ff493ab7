"""Masking secrets: values substituted from ``${ENV}`` never reach a log line or a result.

The daemon fills :data:`secret_masker` with every value a config took from
the environment (and its encodings: :mod:`runner.secret_forms`); the log,
the results and the history pass what they write through it. A plugin that
writes something of its own somewhere else (a file name, a report) masks it
with :func:`mask_secrets`, and one that handles secrets of its own (a
password it types into a form) keeps a :class:`SecretMasker` of its own.

This module is public API (re-exported by :mod:`runner.plugin`) and part of
the ground floor: it imports nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from structlog.typing import EventDict, WrappedLogger

from runner.secret_forms import forms

__all__ = ["SecretMasker", "mask_secrets", "secret_masker"]


class SecretMasker:
    """Replaces secret values, in any encoding, with ``***``.

    A safety net: plugins should not log secrets in the first place, but a
    token pasted into a URL or an exception message must not reach the log.
    An instance is also a structlog processor that masks every value of an
    event.
    """

    MIN_LENGTH = 4  # masking "1" or "on" everywhere would garble every line

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def set(self, secrets: Iterable[str]) -> None:
        """Mask these values (those shorter than :attr:`MIN_LENGTH` are left
        alone), and every encoding of them the daemon may write (URL-quoted,
        JSON-, repr- and HTML-escaped: :mod:`runner.secret_forms`). Replaces
        what was set before."""
        every = {form for s in secrets if len(s) >= self.MIN_LENGTH for form in forms(s)}
        self._secrets = tuple(sorted(every, key=len, reverse=True))

    @property
    def active(self) -> bool:
        """Whether there is anything to mask."""
        return bool(self._secrets)

    def mask(self, value: Any) -> Any:
        """``value`` (a string, or lists and dicts of them) with every secret as ``***``.

        Anything else is returned as it is; tuples come back as lists."""
        return self._mask(value) if self._secrets else value

    def _mask(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, "***")
            return value
        if isinstance(value, dict):
            return {k: self._mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._mask(v) for v in value]
        return value

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        if not self._secrets:
            return event
        return {key: self._mask(value) for key, value in event.items()}


#: The daemon's masker: the values its config substituted from the environment.
secret_masker = SecretMasker()


def mask_secrets(value: Any) -> Any:
    """``value`` with every secret of the daemon's config (a value substituted
    from ``${ENV}``, in any encoding) replaced by ``***``.

    ``value`` is a string, or lists and dicts of strings; anything else is
    returned as it is. Outside a daemon (``runner.testing``) nothing is masked.
    """
    return secret_masker.mask(value)
