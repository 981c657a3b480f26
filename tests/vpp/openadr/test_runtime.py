"""The VEN inside the running service: its supervised tasks show in /readyz and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import MethodType

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.support import eventually
from tests.vpp.conftest import ApiClient
from tests.vpp.openadr.helpers import crash_one_poll, event_body
from tests.vpp.openadr.vtn_sim import BlClient, VtnSim
from vpp.api import create_app
from vpp.api.context import COMPONENTS
from vpp.metrics import Metrics
from vpp.openadr import Ven
from vpp.runtime import runtime_cleanup_ctx
from vpp.settings import Settings
from vpp.state import State

PARK = "oadr-rt"


@pytest.fixture
async def service(
    vtn: VtnSim,
    bl: BlClient,
    state: State,
    service_settings: Settings,
) -> AsyncIterator[ApiClient]:
    program = await bl.create_program("park-dr")
    # an event this VEN cannot map (looping intervals): rejected alone, counted by reason
    simple = [{"type": "SIMPLE", "values": [1]}]
    await bl.create_event(event_body(program["id"], simple, intervals=2) | {"duration": "P9999Y"})
    settings = service_settings
    oadr = settings.openadr
    oadr.vtn_url, oadr.client_id, oadr.client_secret = vtn.url, "ven", "ven-secret"
    oadr.park, oadr.programs, oadr.poll_interval_s = PARK, "park-dr", 0.1
    app = create_app(settings, state, metrics=Metrics())
    app.cleanup_ctx.append(runtime_cleanup_ctx(with_ven=True))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_readyz_and_metrics_show_a_restarted_ven_task(service: ApiClient) -> None:
    check = service.app[COMPONENTS]["openadr"]
    assert isinstance(check, MethodType)  # the VEN's bound health method
    ven = check.__self__
    assert isinstance(ven, Ven)
    await eventually(lambda: ven.status.polls >= 1)
    ready = await (await service.get("/readyz")).json()
    assert ready["ready"] and ready["components"]["openadr"]["ok"]
    assert ready["components"]["openadr"]["tasks"]["poll"]["restarts"] == 0

    await crash_one_poll(ven)
    openadr = (await (await service.get("/readyz")).json())["components"]["openadr"]
    assert openadr["tasks"]["poll"]["restarts"] == 1 and openadr["tasks"]["poll"]["running"]
    assert "a bug in a poll cycle" in openadr["tasks"]["poll"]["last_error"]
    text = await (await service.get("/metrics")).text()
    assert f'vpp_openadr_task_restarts_total{{park="{PARK}",task="poll"}} 1.0' in text
    assert f'vpp_openadr_task_up{{park="{PARK}",task="poll"}} 1.0' in text
    assert f'vpp_openadr_polls_total{{park="{PARK}"}}' in text
    assert f'vpp_openadr_events_rejected_total{{park="{PARK}",reason="mapping"}} 1.0' in text
    assert openadr["rejected_events"] == {"mapping": 1}
