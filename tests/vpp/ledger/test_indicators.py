"""Size classes and thresholds of the zero-carbon park notice; the months' calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from vpp.ledger.indicators import WindowTotals, indicator, size_class
from vpp.ledger.months import closes_at, is_closed, month_span, months_of, next_month

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 1, 1, tzinfo=SHANGHAI)
END = datetime(2027, 1, 1, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("annual_tce", "label", "threshold"),
    [
        (0.0, "below 0.2 Mtce/a", 0.2),
        (199_999.0, "below 0.2 Mtce/a", 0.2),
        (200_000.0, "0.2-1 Mtce/a", 0.2),
        (1_000_000.0, "0.2-1 Mtce/a", 0.2),
        (1_000_001.0, "above 1 Mtce/a", 0.3),
    ],
)
def test_size_classes(annual_tce: float, label: str, threshold: float) -> None:
    size = size_class(annual_tce)
    assert (size.label, size.carbon_intensity_threshold) == (label, threshold)
    assert "910" in size.note
    assert ("sets no class" in size.note) is label.startswith("below")


def test_a_rolling_year_is_scaled_from_its_months_with_data() -> None:
    """Nine months with data, 300,000 tce: 400,000 tce a year → the 0.2-1 Mtce class.
    54,000 tCO2 / 300,000 tce = 0.18 ≤ 0.2: met; clean 280,000 / 300,000 = 0.933 ≥ 0.9."""
    ind = indicator(
        "rolling_year", "2026-12", START, END, WindowTotals(9, 300_000, 54_000, 280_000)
    )
    assert ind.annual_tce == pytest.approx(400_000) and ind.size_class == "0.2-1 Mtce/a"
    assert ind.carbon_intensity_t_per_tce == pytest.approx(0.18) and ind.carbon_intensity_met
    assert ind.clean_energy_share == pytest.approx(0.93333, abs=1e-5) and ind.clean_energy_met
    above = indicator("month", "2026-12", START, END, WindowTotals(1, 100_000, 31_000, 0))
    assert (above.size_class, above.carbon_intensity_met, above.clean_energy_met) == (
        "above 1 Mtce/a",
        False,
        False,
    )


def test_no_data_gives_null_figures_and_null_verdicts() -> None:
    ind = indicator("month", "2026-12", START, END, WindowTotals(0, 0, 0, 0))
    assert ind.carbon_intensity_t_per_tce is None and ind.carbon_intensity_met is None
    assert ind.clean_energy_share is None and ind.clean_energy_met is None
    assert ind.annual_tce == 0 and ind.months == 0


def test_the_months_calendar() -> None:
    assert next_month(date(2026, 12, 1)) == date(2027, 1, 1)
    assert months_of(date(2026, 11, 15), date(2027, 2, 1)) == [
        date(2026, 11, 1),
        date(2026, 12, 1),
        date(2027, 1, 1),
        date(2027, 2, 1),
    ]
    start, end = month_span(date(2026, 2, 1), SHANGHAI)
    assert (end - start).days == 28 and start.isoformat() == "2026-02-01T00:00:00+08:00"
    # February closes at local midnight of March 6 (5 days after its end)
    assert closes_at(date(2026, 2, 1), SHANGHAI, 5).isoformat() == "2026-03-06T00:00:00+08:00"
    assert not is_closed(date(2026, 2, 1), SHANGHAI, datetime(2026, 3, 5, 15, 59, tzinfo=UTC), 5)
    assert is_closed(date(2026, 2, 1), SHANGHAI, datetime(2026, 3, 5, 16, 0, tzinfo=UTC), 5)
