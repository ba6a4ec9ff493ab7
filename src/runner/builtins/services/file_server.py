"""The ``file-server`` service: serves a folder over HTTP.

It exists so that a config can be complete without the internet: the
daemon hosts a page and its own checks (``http-status``, ``page-title``)
check it. It is the standard library's ``http.server`` in a thread, not a web
server to put in front of users: GET and HEAD of static files only, bound to
loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog
from pydantic import Field, field_validator

from runner.builtins.services._listen import UNBOUNDED_BACKLOG, listen_error
from runner.plugin import Options, Service, ServiceContext


class FileServerOptions(Options):
    directory: str = Field(
        description="Folder to serve; a relative path is taken from the daemon's working directory."
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(
        default=0, ge=0, le=65535, description="TCP port; 0 picks a free one (logged when ready)."
    )

    @field_validator("directory")
    @classmethod
    def _must_be_a_folder(cls, value: str) -> str:
        path = Path(value)
        if not path.is_dir():
            raise ValueError(f"{value!r} is not a folder (relative to {Path.cwd()})")
        return str(path.resolve())


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr would bypass structured logging


class _Server(ThreadingHTTPServer):
    """Reports a request's failure in the structured log.

    socketserver's own ``handle_error`` prints a traceback to stderr, which
    under systemd lands in the journal as 30-odd lines of plain text; a
    browser that drops a favicon request mid-response was enough.
    """

    # socketserver's default backlog is 5: a page's dozen requests at once
    # already overflow it. A thread per connection and no limit of its own:
    # the kernel's usual most (see listen_backlog).
    request_queue_size = UNBOUNDED_BACKLOG

    def __init__(
        self, address: tuple[str, int], handler: Any, log: structlog.typing.FilteringBoundLogger
    ) -> None:
        super().__init__(address, handler)
        self.log = log

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        client = f"{client_address[0]}:{client_address[1]}"
        if isinstance(exc, ConnectionError):
            # Reset, broken pipe: the client went away mid-response, its business.
            self.log.debug("file_server.client_gone", client=client, error=repr(exc))
        else:
            self.log.error("file_server.request_failed", client=client, exc_info=True)


class FileServer(Service[FileServerOptions]):
    """Serves a folder over HTTP (loopback by default), for self-contained configs."""

    Options = FileServerOptions

    async def serve(self, ctx: ServiceContext) -> None:
        opts = self.options
        directory = opts.directory  # made absolute by the validator
        handler = functools.partial(_QuietHandler, directory=directory)
        try:
            server = _Server((opts.host, opts.port), handler, ctx.log)
        except OSError as exc:
            raise listen_error(opts.host, opts.port, exc) from exc
        server.daemon_threads = True
        thread = threading.Thread(
            target=server.serve_forever, name=f"file-server:{ctx.job}", daemon=True
        )
        thread.start()
        port = server.server_address[1]
        try:
            ctx.ready(host=opts.host, port=port, directory=directory)
            await asyncio.Event().wait()
        finally:
            # shutdown() waits for serve_forever's loop (0.5 s poll): not on the event loop.
            await asyncio.to_thread(server.shutdown)
            server.server_close()
