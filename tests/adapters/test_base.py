import asyncio
import logging

import pytest

from adapters._base import AssetBook
from adapters.types import Telemetry


def test_every_dropped_field_is_counted_but_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    book = AssetBook({}, queue_size=4, log=logging.getLogger("adapters.test_book"))
    caplog.set_level(logging.DEBUG, logger="adapters.test_book")
    for _ in range(5):
        book.reject_field("site/loads/l1", "soc", "out_of_range", 55)
    book.reject_field("site/loads/l1", "p_kw", "not_a_number", "x")

    assert book.stats.rejected_fields[("soc", "out_of_range")] == 5
    assert book.stats.rejected_fields[("p_kw", "not_a_number")] == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "dropped field soc=55 from site/loads/l1: out_of_range",
        "dropped field p_kw='x' from site/loads/l1: not_a_number",
    ]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4


def _reading(asset: str, kw: float) -> Telemetry:
    return Telemetry(asset_id=asset, ts=1.0, power_kw=kw)


async def test_queued_batches_keep_arrival_order_and_drop_the_oldest_beyond_the_bound() -> None:
    book = AssetBook({}, queue_size=5, log=logging.getLogger("adapters.test_book"))
    book.publish(_reading("a", 1))
    book.publish(_reading("b", 2))  # joins the waiting batch of "a"
    book.publish_many([_reading("a", 3), _reading("c", 4), _reading("d", 5)])
    book.publish_many([_reading("e", 6), _reading("f", 7)])  # two beyond the bound
    book.publish_many([])

    assert book.stats.messages == 7
    assert book.stats.dropped == 2
    assert book.latest["a"].power_kw == 3  # live state: the newest, whatever was dropped
    batches = book.batches()
    got = [await anext(batches), await anext(batches)]
    assert [[r.power_kw for r in batch] for batch in got] == [[3, 4, 5], [6, 7]]

    book.publish(_reading("g", 8))
    readings = book.readings()
    async with asyncio.timeout(1):
        assert (await anext(readings)).power_kw == 8
        waiting = asyncio.ensure_future(anext(readings))
        await asyncio.sleep(0)
        assert not waiting.done()  # nothing queued: the consumer waits
        book.publish(_reading("h", 9))
        assert (await waiting).power_kw == 9
