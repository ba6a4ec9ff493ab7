"""The ``webhook`` notifier (builtins/notifiers/webhook.py) against a real local
receiver: what it POSTs, how it signs it, how it retries, and what it says
when an alert could not be delivered. The daemon around it (when alerts are
sent) is test_alerts.py."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from helpers import Peer, closed_port
from runner import __version__
from runner.builtins.notifiers.webhook import SIGNATURE_HEADER, Webhook, WebhookOptions
from runner.notifier import Alert, AlertEvent, NotifyContext
from runner.plugin import Result
from runner.resources import Resources
from runner.results import RunRecord

SECRET = "hmac-secret-value-4711"
TOKEN = "query-token-0815"

ALERT = Alert(
    job="api",
    plugin="http-status",
    event=AlertEvent.DOWN,
    since=1.7e9,
    last=RunRecord.of(
        "api",
        "http-status",
        Result.fail("status 500", status_code=500),
        started_at=1.7e9,
        duration_ms=12.5,
    ),
    consecutive=3,
    status_page="http://127.0.0.1:9100/#api",
)


@pytest.fixture
def receiver(peer: Peer) -> Peer:
    """The alert receiver: conftest's ``peer``."""
    return peer


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    res = Resources()
    yield res
    await res.aclose()


async def send(resources: Resources, alert: Alert = ALERT, **options: Any) -> None:
    webhook = Webhook(WebhookOptions.model_validate(options))
    ctx = NotifyContext(notifier="ops", job=alert.job, plugin=alert.plugin, resources=resources)
    await webhook.send(alert, ctx)


async def test_the_body_is_the_alerts_json_signed_with_hmac(
    receiver: Peer, resources: Resources
) -> None:
    await send(
        resources,
        url=f"{receiver.url}/hook",
        secret=SECRET,
        headers={"Authorization": "Bearer abc"},
    )
    (got,) = receiver.received
    assert json.loads(got["raw"]) == ALERT.to_json()
    headers = got["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == f"runner/{__version__}"
    assert headers["Authorization"] == "Bearer abc"
    digest = hmac.new(SECRET.encode(), got["raw"], hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={digest}"


async def test_without_a_secret_there_is_no_signature(receiver: Peer, resources: Resources) -> None:
    await send(resources, url=f"{receiver.url}/hook")
    (got,) = receiver.received
    assert SIGNATURE_HEADER not in got["headers"]


async def test_a_failing_receiver_is_tried_again_until_it_takes_the_alert(
    receiver: Peer, resources: Resources
) -> None:
    receiver.modes = ["error", "error"]  # then ok
    await send(resources, url=f"{receiver.url}/hook", retries=3, retry_delay="10ms")
    assert [r["event"] for r in receiver.received] == ["down"] * 3
    # Each attempt sends the same body.
    assert len({r["raw"] for r in receiver.received}) == 1


async def test_an_alert_not_delivered_raises_naming_the_url_without_its_secrets(
    receiver: Peer, resources: Resources
) -> None:
    receiver.mode = "error"
    port = receiver.url.rsplit(":", 1)[1]
    url = f"http://user:pass-{TOKEN}@127.0.0.1:{port}/hook?token={TOKEN}"
    with pytest.raises(RuntimeError) as caught:
        await send(
            resources,
            url=url,
            retries=1,
            retry_delay="10ms",
            secret=SECRET,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert str(caught.value) == (
        f"POST http://127.0.0.1:{port}/hook failed after 2 attempt(s): answered 500"
    )
    assert len(receiver.received) == 2


async def test_a_receiver_that_does_not_answer_is_given_up_after_timeout(
    receiver: Peer, resources: Resources
) -> None:
    receiver.mode = "hang"
    with pytest.raises(RuntimeError, match=r"failed after 1 attempt\(s\): no answer within 0.2s$"):
        await send(resources, url=f"{receiver.url}/hook", retries=0, timeout="200ms")


async def test_a_receiver_that_is_not_there(resources: Resources) -> None:
    port = closed_port()
    with pytest.raises(RuntimeError) as caught:
        await send(resources, url=f"http://127.0.0.1:{port}/hook", retries=0)
    assert str(caught.value).startswith(
        f"POST http://127.0.0.1:{port}/hook failed after 1 attempt(s): ConnectError"
    )


async def test_one_client_serves_every_alert(receiver: Peer, resources: Resources) -> None:
    for _ in range(3):
        await send(resources, url=f"{receiver.url}/hook")
    await send(resources, url=f"{receiver.url}/hook", verify_tls=False)
    assert len(receiver.received) == 4
    # One client per TLS setting, shared by every delivery.
    assert len(resources) == 2
