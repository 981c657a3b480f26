"""The park's energy-carbon ledger: per-enterprise energy, tce, CO2 and green-power share.

``factors`` holds the coefficient tables (standard coal equivalents, grid and
fuel emission factors, each with value, unit, vintage and source);
``entries`` the monthly entries the meters cannot see (fuels, purchased green
power); ``rows`` the shapes of a ledger as the API returns it. The balance
per interval is computed from the interval history (`vpp.history`).

The package exports nothing itself: import from its modules.
"""

__all__: list[str] = []
