"""The flexibility view keeps a meter apart from the devices it measures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.vpp.samples import sample
from vpp.flex import build_view, grid_at, nominal_kw
from vpp.model import LiveState, parse_asset


def _meter(asset_id: str) -> dict[str, object]:
    return {
        "kind": "meter", "id": asset_id, "owner": sample()["owner"], "grid_node": "n1",
        "account_no": "0301-1", "connection": None,
    }  # fmt: skip


def test_a_meter_is_neither_a_row_nor_left_out_nor_measured() -> None:
    assets = [
        parse_asset(sample(id="bess-1")),
        parse_asset(sample("flexible_load", id="load-1")),
        parse_asset(_meter("meter-1")),
        parse_asset(_meter("meter-silent")),
    ]
    live = {
        "bess-1": LiveState(power_kw=0.0, soc=0.5),
        "load-1": LiveState(power_kw=800.0),
        "meter-1": LiveState(power_kw=2500.0),
        "meter-silent": None,
    }
    view = build_view(assets, live, grid_at(datetime(2027, 7, 1, tzinfo=UTC), 4))
    assert [a.id for a in view.assets] == ["bess-1", "load-1"]
    assert view.excluded == {}
    assert view.measured_kw == {"bess-1": 0.0, "load-1": 800.0}
    assert view.metered_kw == {"meter-1": 2500.0}
    assert view.portfolio is not None
    assert float(view.portfolio.baseline[:, 0].sum()) == pytest.approx(800.0)
    assert nominal_kw(assets[2]) == 0.0
