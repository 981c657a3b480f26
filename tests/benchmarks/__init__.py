"""Benchmarks (measured, not timed tests); run from the repository root with the venv's python.

* ``python -m tests.benchmarks.dispatch``: bids and disaggregation against the exact LP;
* ``python -m tests.benchmarks.adapters``: MQTT ingest into Redis, setpoint round trips;
* ``python -m tests.benchmarks.e2e``: event received → every setpoint confirmed.

Each prints a table and writes JSON (``--out``); ``--help`` lists the options,
``--verbose`` shows the protocol libraries' logging. What they share is in
`tests.benchmarks.support` (percentiles, child processes, free ports,
logging); the simulated park beside its adapters (`tests.support.sim_park`)
and the seeded synthetic portfolios (`tests.support.synthetic`) are shared
with the tests. The product never imports this package.
"""

__all__: list[str] = []
