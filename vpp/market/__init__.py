"""Market rules: named profiles of a market's rules, each with its sources.

`load_profiles` reads the shipped profiles (``gd-spot-unit``,
``gd-market-dr``; `vpp.market.profiles`) and the operator's own file
(``[market] profiles_file``); a `MarketProfile` gives the bid rules it
implies and the rules a declaration is checked against
(`vpp.bids.declaration`).
"""

from vpp.market.profiles import MarketProfile, RuleSource, load_profiles, shipped_profiles

__all__ = ["MarketProfile", "RuleSource", "load_profiles", "shipped_profiles"]
