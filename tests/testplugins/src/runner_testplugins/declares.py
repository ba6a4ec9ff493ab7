"""A third-party check that declares what the daemon needs from it: the host
it reaches (its option is ``endpoint``, a name the daemon knows nothing of)
and a numeric result field to export as a metric."""

from __future__ import annotations

import asyncio
import socket

from runner.plugin import UNRESOLVED_HOST, Check, Options, Result, ResultMetric, RunContext


class ReachOptions(Options):
    endpoint: str  # host:port


class Reach(Check[ReachOptions]):
    """Connects to endpoint (host:port) and closes the connection."""

    Options = ReachOptions
    result_metrics = (ResultMetric("port", "reach_port", "The port the check connected to"),)

    @classmethod
    def target_host(cls, options: ReachOptions) -> str | None:
        return options.endpoint.rpartition(":")[0]

    async def run(self, ctx: RunContext) -> Result:
        host, _, port = self.options.endpoint.rpartition(":")
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except socket.gaierror as exc:
            return Result.error(f"cannot resolve {host}: {exc.strerror}", **{UNRESOLVED_HOST: host})
        except OSError as exc:
            return Result.error(f"cannot connect to {self.options.endpoint}: {exc.strerror}")
        writer.close()
        await writer.wait_closed()
        return Result.ok(port=int(port))
