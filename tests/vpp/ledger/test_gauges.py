"""The zero-carbon indicator gauges: set from the book, a failing park counted, not fatal."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from tests.vpp.ledger.support import PARK
from tests.vpp.ledger.test_book_month import lay_park
from vpp.clock import Clock
from vpp.ledger.book import LedgerBook
from vpp.ledger.gauges import IndicatorRefresher
from vpp.metrics import Metrics
from vpp.state import State

#: In July 2026: June is the last complete month.
JULY = datetime(2026, 7, 10, tzinfo=UTC)


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_the_gauges_show_the_books_indicators(book: LedgerBook, state: State) -> None:
    await lay_park(state)
    metrics = Metrics(CollectorRegistry())

    async def parks() -> list[str]:
        return ["no-such-park", PARK]

    refresher = IndicatorRefresher(
        book, parks, metrics, refresh_s=900, clock=Clock(time_scale=1.0, origin=JULY)
    )
    done = await refresher.refresh()

    expected = await book.indicators(PARK, now=JULY)
    assert list(done) == [PARK] and done[PARK] == expected
    for ind in expected:
        labels = {"park": PARK, "window": ind.window}
        assert ind.carbon_intensity_t_per_tce is not None
        assert _value(metrics, "vpp_ledger_carbon_intensity_tco2_per_tce", **labels) == (
            ind.carbon_intensity_t_per_tce
        )
        assert (
            _value(metrics, "vpp_ledger_carbon_intensity_threshold_tco2_per_tce", **labels) == 0.2
        )  # a small park: the notice's smallest class
        assert _value(metrics, "vpp_ledger_clean_energy_share", **labels) == (
            ind.clean_energy_share
        )
        assert _value(metrics, "vpp_ledger_clean_energy_share_threshold", **labels) == 0.9
        assert _value(metrics, "vpp_ledger_annual_energy_tce", **labels) == ind.annual_tce
    # the park that does not exist is counted and left out; the other was still refreshed
    assert _value(metrics, "vpp_ledger_refresh_errors_total", park="no-such-park") == 1.0
    assert (
        _value(metrics, "vpp_ledger_clean_energy_share", park="no-such-park", window="month")
        is None
    )


async def test_a_park_without_energy_shows_no_figure_rather_than_zero(
    book: LedgerBook, state: State
) -> None:
    await lay_park(state)
    metrics = Metrics(CollectorRegistry())

    async def parks() -> list[str]:
        return [PARK]

    # first a month with data, then (a year later, no history since) none: the series go
    early = IndicatorRefresher(book, parks, metrics, refresh_s=900, clock=Clock(origin=JULY))
    await early.refresh()
    labels = {"park": PARK, "window": "month"}
    assert _value(metrics, "vpp_ledger_carbon_intensity_tco2_per_tce", **labels) is not None
    later = datetime(2027, 9, 10, tzinfo=UTC)
    await IndicatorRefresher(
        book, parks, metrics, refresh_s=900, clock=Clock(origin=later)
    ).refresh()
    assert _value(metrics, "vpp_ledger_carbon_intensity_tco2_per_tce", **labels) is None
    assert _value(metrics, "vpp_ledger_clean_energy_share", **labels) is None
    # the threshold of the class stays: it is known without data
    assert _value(metrics, "vpp_ledger_clean_energy_share_threshold", **labels) == 0.9
