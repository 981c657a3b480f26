"""Market rule profiles: named sets of a market's rules, each with its sources.

The shipped profiles (``vpp/market/profiles.toml``, package data) are
Guangdong's:

* ``gd-spot-unit``: a VPP trading unit in the spot market: regulating
  capability >= 1 MW per trading unit, continuous response >= 1 h, every
  resource of a unit at one clearing node (the assets' ``grid_node``), as
  reported of 广东省虚拟电厂参与电力市场交易实施方案 (2024-11-04);
* ``gd-market-dr``: market-based demand response (day-ahead peak shaving):
  >= 5 MW for the VPP, >= 1 h, declared price cap = spot clearing price cap
  x 150 %, floor 0, as reported of 广东省市场化需求响应实施细则.

Each profile carries its ``sources`` (document, issuer, date, where it is
from, and whether the figure is *as reported*); the TOML file says which
figure comes from where. The spot price cap is a configured number (its
source says how the market sets it), not a rule.

A file named by ``[market] profiles_file`` adds profiles or replaces a
shipped one by name (whole: a profile is never merged field by field).
Units are the market's: MW, minutes, CNY/MWh; `MarketProfile.bid_rules` gives
the service's `BidRules` (kW, CNY/kWh).

Errors: `load_profiles` raises `SettingsError` naming the file, the
profile and the field (``market profile 'gd-x' in f.toml: min_capacity_mw:
Input should be greater than or equal to 0``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vpp.errors import SettingsError
from vpp.model import ID_PATTERN, invalid_input

__all__ = ["SHIPPED", "MarketProfile", "RuleSource", "load_profiles", "shipped_profiles"]

#: The shipped profiles file, in this package.
SHIPPED = "profiles.toml"


class RuleSource(BaseModel):
    """Where some of a profile's figures come from.

    Attributes:
        rules: the profile fields this source supports.
        document: the published rule (its title).
        issuer: who issued it.
        issued: date of issue (ISO 8601), empty when not known.
        url: where the text (or the report of it) was read.
        as_reported: the figure is taken from a report of the document, not
            from the issuer's own publication.
        note: what the source says, in short.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[str] = Field(min_length=1)
    document: str = Field(min_length=1)
    issuer: str = ""
    issued: str = ""
    url: str = ""
    as_reported: bool = True
    note: str = ""


class MarketProfile(BaseModel):
    """One market's rules for a bid and its declaration.

    Attributes:
        name: the profile's name (its key in the file).
        title: what it is, in words.
        min_capacity_mw: least regulating capability, MW.
        capacity_scope: ``unit``: each trading unit must reach the minimum;
            ``vpp``: the whole VPP (the sum of its units).
        capacity_measure: what counts as regulating capability in an hour:
            ``range`` (upper - lower demand bound), ``down`` (reduction below
            the baseline) or ``up`` (increase above it).
        min_duration_minutes: least continuous response, minutes.
        one_clearing_node: every resource of a trading unit at one clearing node.
        spot_price_cap_cny_per_mwh: the spot market's price cap (configured), CNY/MWh.
        price_cap_factor: the declared price cap as a multiple of the spot cap.
        price_floor_cny_per_mwh: the lowest declared price, CNY/MWh.
        price_steps: steps of a price-quantity curve.
        sources: where the figures come from.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=ID_PATTERN)
    title: str = ""
    min_capacity_mw: float = Field(ge=0)
    capacity_scope: Literal["unit", "vpp"] = "unit"
    capacity_measure: Literal["range", "down", "up"] = "range"
    min_duration_minutes: float = Field(ge=0)
    one_clearing_node: bool = True
    spot_price_cap_cny_per_mwh: float = Field(ge=0)
    price_cap_factor: float = Field(default=1.0, gt=0)
    price_floor_cny_per_mwh: float = Field(default=0.0, ge=0)
    price_steps: int = Field(default=5, ge=1, le=20)
    sources: list[RuleSource] = Field(min_length=1)

    @property
    def price_cap_cny_per_mwh(self) -> float:
        """The declared price cap: the spot cap x ``price_cap_factor``, CNY/MWh."""
        return self.spot_price_cap_cny_per_mwh * self.price_cap_factor

    def bid_rules(self) -> dict[str, float]:
        """The profile as the fields of the service's `vpp.bids.BidRules` (kW and CNY/kWh)."""
        return {
            "min_capacity_kw": self.min_capacity_mw * 1000.0,
            "min_duration_minutes": self.min_duration_minutes,
            "price_cap": self.price_cap_cny_per_mwh / 1000.0,
            "price_floor": self.price_floor_cny_per_mwh / 1000.0,
            "price_steps": self.price_steps,
        }


def _read(text: str, where: str) -> dict[str, MarketProfile]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"cannot read market profiles {where}: {exc}") from exc
    unknown = sorted(set(data) - {"profiles"})
    if unknown:
        raise SettingsError(f"market profiles {where}: unknown table {unknown[0]!r}")
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise SettingsError(f"market profiles {where}: [profiles] must be a table")
    out: dict[str, MarketProfile] = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise SettingsError(f"market profile {name!r} in {where}: must be a table")
        try:
            profile = MarketProfile.model_validate({**table, "name": name})
        except ValidationError as exc:
            problem = invalid_input(exc)
            raise SettingsError(f"market profile {name!r} in {where}: {problem}") from exc
        if profile.price_floor_cny_per_mwh > profile.price_cap_cny_per_mwh:
            raise SettingsError(
                f"market profile {name!r} in {where}: price_floor_cny_per_mwh: must not exceed "
                f"the price cap ({profile.price_cap_cny_per_mwh:g} CNY/MWh)"
            )
        out[name] = profile
    return out


def shipped_profiles() -> dict[str, MarketProfile]:
    """The profiles shipped with the service, by name."""
    text = resources.files(__package__ or "vpp.market").joinpath(SHIPPED).read_text("utf-8")
    return _read(text, f"vpp/market/{SHIPPED}")


def load_profiles(
    profiles_file: str | Path = "", default_profile: str = ""
) -> Mapping[str, MarketProfile]:
    """The shipped profiles, with those of ``profiles_file`` added or replacing them by name.

    Args:
        profiles_file: a TOML file of ``[profiles.<name>]`` tables ("" for none).
        default_profile: a name that must be among the result ("" for no check).

    Returns:
        Profile name -> profile.

    Raises:
        SettingsError: the file cannot be read, a profile is invalid (naming
            the file, the profile and the field), or ``default_profile`` names
            no profile.
    """
    profiles = shipped_profiles()
    if profiles_file:
        try:
            text = Path(profiles_file).read_text("utf-8")
        except OSError as exc:
            where = f"[market] profiles_file {profiles_file}"
            raise SettingsError(f"cannot read {where}: {exc}") from exc
        profiles.update(_read(text, str(profiles_file)))
    if default_profile and default_profile not in profiles:
        raise SettingsError(
            f"[market] default_profile {default_profile!r} names no profile "
            f"(known: {', '.join(sorted(profiles))})"
        )
    return profiles
