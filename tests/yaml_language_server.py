"""yaml-language-server (the engine of VS Code's YAML extension), driven over
stdio as an editor drives it: what a person sees in the editor, as data.

``scripts/dev.sh setup`` installs it with ``npm ci`` into
``tests/editor/node_modules`` (the version is pinned in
``tests/editor/package-lock.json``). Without it the tests that need it are
skipped, except under CI (``$CI`` set), where they fail.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import pytest

SERVER = Path(__file__).parent / "editor/node_modules/yaml-language-server/bin/yaml-language-server"
INSTALL_HINT = "yaml-language-server is not installed; run scripts/dev.sh setup (needs npm)"


def require_server() -> list[str]:
    """The command that starts the server; skip (fail under CI) when it is missing."""
    node = shutil.which("node")
    if node is None or not SERVER.exists():
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    return [node, str(SERVER), "--stdio"]


class Diagnostic(tuple[int, str]):
    """(1-based line, message) of one problem the editor underlines."""

    @property
    def line(self) -> int:
        return self[0]

    @property
    def message(self) -> str:
        return self[1]


class YamlLanguageServer:
    """One server process; :meth:`diagnostics` opens a document and returns
    what the server publishes for it."""

    def __init__(self, command: list[str]) -> None:
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        self._version = 0
        assert self._process.stdout is not None
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()
        request = self._request("initialize", {"processId": os.getpid(), "capabilities": {}})
        self._wait(lambda m: m.get("id") == request, "the initialize response")
        self._notify("initialized", {})
        self._notify(
            "workspace/didChangeConfiguration",
            {"settings": {"yaml": {"validate": True, "completion": True, "hover": True}}},
        )

    def __enter__(self) -> YamlLanguageServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._process.kill()
        self._process.wait(timeout=10)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()

    def diagnostics(self, path: Path, timeout: float = 30) -> list[Diagnostic]:
        """Open ``path`` (its text as it is on disk) and return the server's
        diagnostics for it, sorted by line."""
        uri = path.resolve().as_uri()
        self._version += 1
        self._notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "yaml",
                    "version": self._version,
                    "text": path.read_text(),
                }
            },
        )
        published = self._wait(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
            ),
            f"diagnostics for {path.name}",
            timeout,
        )
        return sorted(
            Diagnostic((d["range"]["start"]["line"] + 1, d["message"]))
            for d in published["params"]["diagnostics"]
        )

    # -- JSON-RPC over stdio

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self._process.stdin is not None
        self._process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self._process.stdin.flush()

    def _request(self, method: str, params: dict[str, Any]) -> int:
        self._next_id += 1
        self._send({"id": self._next_id, "method": method, "params": params})
        return self._next_id

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def _read(self, stream: BinaryIO) -> None:
        while True:
            length = 0
            while line := stream.readline().strip():
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if not length:
                return  # the server exited
            self._messages.put(json.loads(stream.read(length)))

    def _wait(self, match: Any, what: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
            if "id" in message and "method" in message:
                # A request from the server (configuration, registrations): answer it.
                items = message.get("params", {}).get("items", [])
                result = (
                    [None] * len(items) if message["method"] == "workspace/configuration" else None
                )
                self._send({"id": message["id"], "result": result})
                continue
            if match(message):
                return message
