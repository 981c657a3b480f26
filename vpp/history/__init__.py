"""The park's memory: interval history per asset and meter, on the market's 15-minute grid.

``grid`` places a time on the grid (a local day of the park and a slot of it)
and holds one series' day, ``DayVector``. The store, the recorder that writes
it from live telemetry, the import of metering data and the historical
baselines build on it.

The package exports nothing itself: import from its modules
(``vpp.history.grid``, ``vpp.history.store``, ``vpp.history.recorder``), which
each part of issue 10 adds to on its own.
"""

__all__: list[str] = []
