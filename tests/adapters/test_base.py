import logging

import pytest

from adapters._base import AssetBook


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
