"""A park's forecast inputs besides its history: uploaded irradiance and charger sessions.

`park_inputs` gives the `vpp.forecast.refresh.ExtraContext` the API and the
background refresher issue forecasts with: the irradiance uploaded for the
days asked (`vpp.forecast.irradiance.irradiance_days`, W/m² per slot) and
the chargers' sessions that arrived from the first of those days to the end
of the last (`vpp.forecast.sessions.SessionStore`), under
``extra["sessions"]`` (`vpp.forecast.chargers.SESSIONS`).
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from vpp.forecast.chargers import SESSIONS
from vpp.forecast.irradiance import irradiance_days
from vpp.forecast.refresh import ContextParts, ExtraContext
from vpp.forecast.sessions import SessionStore
from vpp.history.grid import day_start
from vpp.model import Park
from vpp.state import State

__all__ = ["park_inputs"]


def park_inputs(state: State, *, retention_days: int = 400) -> ExtraContext:
    """The reader of a park's irradiance and sessions over local days ``first``..``last``.

    Raises (when called):
        StateUnavailable: Redis did not answer.
    """
    sessions = SessionStore(state, retention_days=retention_days)

    async def read(park: Park, first: date, last: date) -> ContextParts:
        tz = ZoneInfo(park.timezone)
        days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        begin, end = day_start(first, tz), day_start(last + timedelta(days=1), tz)
        return ContextParts(
            irradiance=await irradiance_days(state, park.id, days),
            extra={SESSIONS: await sessions.read(park.id, begin, end)},
        )

    return read
