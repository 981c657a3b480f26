"""MQTT notifications from the VTN wake the VEN's poll early (real Mosquitto)."""

from __future__ import annotations

from tests.support import eventually
from tests.vpp.openadr.helpers import RecordingSink, event_body, ven_settings
from tests.vpp.openadr.vtn_sim import BlClient, VtnSim
from vpp.openadr import OpenAdrSchema, Ven


async def test_notification_triggers_an_early_poll(
    spec: OpenAdrSchema, mqtt_addr: tuple[str, int], topic_prefix: str, sink: RecordingSink
) -> None:
    vtn = VtnSim(schema=spec, mqtt=mqtt_addr, topic_prefix=topic_prefix)
    async with vtn, BlClient(vtn.url) as bl:
        program = await bl.create_program("park-dr")
        # A poll period far beyond the test: only a notification can bring the event.
        settings = ven_settings(vtn, poll_interval_s=120.0, use_mqtt=True)
        async with Ven(settings=settings, sink=sink) as ven:
            await eventually(lambda: ven.mqtt_subscribed)
            assert ven.status.mqtt_topics == (f"{topic_prefix}/programs/{program['id']}/events/+",)
            await eventually(lambda: ven.status.polls >= 2)  # the post-subscribe catch-up
            polls, notified = ven.status.polls, ven.status.notifications
            event = await bl.create_event(
                event_body(program["id"], [{"type": "SIMPLE", "values": [2]}])
            )
            # well inside the 120 s poll period: only the notification can explain it
            # (no timed assertion; the wait is generous for a loaded machine)
            await eventually(
                lambda: [d.event_id for d in sink.dispatches] == [event["id"]], within_s=30.0
            )
            assert ven.status.polls > polls and ven.status.notifications > notified

            await bl.delete_event(event["id"])
            await eventually(lambda: sink.cancels == [event["id"]], within_s=30.0)
    assert vtn.violations == []
    assert not any(v.direction == "notification" for v in vtn.violations)
