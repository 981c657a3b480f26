"""Which forecaster forecasts which kind of series: the registry the refresh and the backtest use.

`FORECASTERS` maps a series kind (an asset kind, or ``meter``) to its
`vpp.forecast.inputs.Forecaster`: the load model
(`vpp.forecast.load.LoadModel`) for ``flexible_load`` and ``meter``, the
clear-sky PV model (`vpp.forecast.pv.forecast_pv`) for ``pv`` and the
chargers' session model (`ChargerForecaster`) for ``ev_charger``; another
mapping may be passed to `vpp.forecast.refresh.issue_forecast`. A kind
without a forecaster (``battery``: its state-based envelope is its
forecast) is left out of the forecast. `REFERENCES` are the backtest's
references.

A forecaster may also expect chargers' sessions: one that has a ``sessions``
method (`SessionForecaster`) is asked for them after its curves, and they go
into `vpp.forecast.model.ParkForecast.sessions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from vpp.forecast.chargers import forecast_chargers, park_sessions
from vpp.forecast.inputs import ForecastContext, Forecaster, HistoryWindow
from vpp.forecast.load import LoadModel
from vpp.forecast.model import ExpectedSession, SeriesForecast
from vpp.forecast.pv import forecast_pv
from vpp.forecast.similar import persistence, similar_day

__all__ = [
    "FORECASTERS",
    "LOAD_KINDS",
    "REFERENCES",
    "ChargerForecaster",
    "SessionForecaster",
    "by_forecaster",
]

#: The kinds the load model forecasts.
LOAD_KINDS: tuple[str, ...] = ("flexible_load", "meter")

_LOAD = LoadModel()


class ChargerForecaster:
    """The chargers' forecaster: their expected draw and their expected sessions.

    The curves are `vpp.forecast.chargers.forecast_chargers`, the sessions
    (`ParkForecast.sessions`) `vpp.forecast.chargers.park_sessions`; both
    learn from the session history in ``ctx.extra["sessions"]``.
    """

    def __call__(
        self, window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
    ) -> dict[str, SeriesForecast]:
        """Each charger's expected draw over ``ctx.targets`` (kW per slot)."""
        return forecast_chargers(window, rows, ctx)

    def sessions(
        self, window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
    ) -> Mapping[str, Sequence[ExpectedSession]]:
        """Charger id -> the sessions expected on ``ctx.targets``."""
        return park_sessions(ctx)


#: kind -> its forecaster (the service's forecast).
FORECASTERS: dict[str, Forecaster] = {
    **dict.fromkeys(LOAD_KINDS, _LOAD),
    "pv": forecast_pv,
    "ev_charger": ChargerForecaster(),
}

#: The backtest's reference methods, by the name its scores carry.
REFERENCES: dict[str, Forecaster] = {"persistence": persistence, "similar_day": similar_day}


@runtime_checkable
class SessionForecaster(Protocol):
    """A forecaster that also expects chargers' sessions on the target days."""

    def sessions(
        self, window: HistoryWindow, rows: Sequence[int], ctx: ForecastContext
    ) -> Mapping[str, Sequence[ExpectedSession]]:
        """Charger id -> the sessions expected on ``ctx.targets``."""
        ...


def by_forecaster(
    kinds: Sequence[str], forecasters: Mapping[str, Forecaster]
) -> list[tuple[Forecaster, list[int]]]:
    """Each distinct forecaster with the rows (indices of ``kinds``) it forecasts.

    Kinds that share one forecaster (loads and meters: the load model) go to
    it in one call, so it learns one model over all of them; kinds without a
    forecaster are left out.
    """
    groups: dict[int, tuple[Forecaster, list[int]]] = {}
    for row, kind in enumerate(kinds):
        forecaster = forecasters.get(kind)
        if forecaster is not None:
            groups.setdefault(id(forecaster), (forecaster, []))[1].append(row)
    return list(groups.values())
