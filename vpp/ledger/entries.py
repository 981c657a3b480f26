"""Monthly ledger entries: fuels and purchased green power, per enterprise and month.

What the meters do not see is entered once a month from bills and
certificates (`MonthEntries`): other energy carriers (natural gas, diesel,
purchased heat or steam ...; a quantity in one of the carrier's units,
`vpp.ledger.factors.CARRIERS`) and green power bought through green-power
trading (绿电交易, with its green-electricity certificate ids) or direct
supply (直连).

A ``PUT`` replaces the enterprise's entries of that month as a whole, so it
is idempotent; each change is logged in the park log (``ledger.entries``,
with the previous and the new entries). Stored in the park's hash
``{ns}:{park}:ledger:entries`` (`vpp.keys.Keys.ledger_entries`), field
``{YYYY-MM}:{enterprise}``.

Errors: `vpp.errors.InvalidInput` naming the field (``fuels[0].unit`` for a
unit the carrier is not entered in, ``fuels[0].quantity`` for a negative
one or one above `MAX_QUANTITY`, ``green_power[0].kwh`` likewise,
``enterprise`` for an enterprise the park does not know, ``month`` for a
malformed month, ``green_power[i].certificates[j]`` for a green-electricity
certificate claimed twice: repeated in the body, or held by another month's
or enterprise's entries of the park (`certificate_errors`; a certificate
stands for its energy once, so counting it twice would deduct that green
power twice)); Redis failures as `vpp.state.State.guard`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vpp.errors import FieldError
from vpp.ledger.factors import CARRIERS
from vpp.state import State, pack, unpack

__all__ = [
    "MAX_QUANTITY",
    "MONTH_PATTERN",
    "MONTH_REGEX",
    "YEAR_REGEX",
    "EntryStore",
    "FuelEntry",
    "GreenPowerEntry",
    "Month",
    "MonthEntries",
    "certificate_errors",
    "month_of",
    "parse_month",
]

#: The largest quantity (of its unit) or kWh one entry takes. A park of 1 Mtce
#: a year uses some 83,000 tce a month, about 0.7 TWh of electricity or
#: 6e7 m3 of gas; 1e9 of any unit is above any real park's month, and it keeps
#: every product with a coefficient (and the sum of 100 entries) finite: a
#: quantity near the float maximum would make the tce infinite.
MAX_QUANTITY = 1e9

#: A year of 2000-2099, ``YYYY``, unanchored (the API's spans build on it).
YEAR_REGEX = "20[0-9]{2}"
#: A calendar month of 2000-2099, ``YYYY-MM``, unanchored.
MONTH_REGEX = f"{YEAR_REGEX}-(0[1-9]|1[0-2])"
#: A calendar month of 2000-2099, ``YYYY-MM`` (the API's path and query pattern too).
MONTH_PATTERN = f"^{MONTH_REGEX}$"
Month: TypeAlias = Annotated[str, Field(pattern=MONTH_PATTERN, description="YYYY-MM")]

_MONTH = re.compile(MONTH_PATTERN)

#: The carriers entered per month (electricity comes from the meters).
FuelCarrier: TypeAlias = Literal["natural_gas", "diesel", "gasoline", "lpg", "heat", "steam"]


def parse_month(text: str) -> date:
    """The first day of the month ``YYYY-MM``.

    Raises:
        ValueError: not a month of that form.
    """
    if not _MONTH.match(text):
        raise ValueError(f"{text!r} is not a month (YYYY-MM)")
    return date(int(text[:4]), int(text[5:7]), 1)


def month_of(day: date) -> str:
    """The month of ``day``, ``YYYY-MM``."""
    return f"{day:%Y-%m}"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class FuelEntry(_Entry):
    """A quantity of another energy carrier used in the month (from its bill)."""

    carrier: FuelCarrier
    quantity: float = Field(
        ge=0,
        le=MAX_QUANTITY,
        description=(
            "in unit; at most 1e9 of it (above any real park's month; keeps the tce finite)"
        ),
    )
    unit: str = Field(
        min_length=1,
        max_length=16,
        description=(
            "natural_gas: m3 or 1e4m3; diesel, gasoline, lpg: t or kg; "
            "heat: GJ or MJ; steam: t or GJ"
        ),
    )
    note: str = Field(default="", max_length=500, description="e.g. the bill's number")

    @model_validator(mode="after")
    def _unit_of_carrier(self) -> FuelEntry:
        units = CARRIERS[self.carrier].units
        if self.unit not in units:
            raise ValueError(
                f"unit: {self.carrier} is entered in {' or '.join(units)}, not {self.unit!r}"
            )
        return self


class GreenPowerEntry(_Entry):
    """Green power bought in the month: through green-power trading or direct supply."""

    kind: Literal["trading", "direct"] = Field(
        description="trading: green-power trading (绿电交易); direct: direct supply (直连)"
    )
    kwh: float = Field(
        ge=0,
        le=MAX_QUANTITY,
        description="energy bought, kWh; at most 1e9 (1 TWh: above any real park's month)",
    )
    certificates: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=10_000, description="green-electricity certificate ids"
    )
    note: str = Field(default="", max_length=500, description="e.g. the contract")


class MonthEntries(_Entry):
    """An enterprise's entries of one month; a PUT replaces them as a whole."""

    fuels: list[FuelEntry] = Field(default_factory=list, max_length=100)
    green_power: list[GreenPowerEntry] = Field(default_factory=list, max_length=100)


class EntryStore:
    """The monthly entries of every park, in Redis (`vpp.keys.Keys.ledger_entries`).

    Args:
        state: the service's `vpp.state.State` (its Redis and namespace).
    """

    def __init__(self, state: State) -> None:
        self.state = state

    async def put(
        self,
        park: str,
        month: str,
        enterprise: str,
        entries: MonthEntries,
        *,
        by: str = "",
        role: str = "",
    ) -> MonthEntries | None:
        """Replace ``enterprise``'s entries of ``month`` and log the change in the park log.

        Idempotent: the same entries again change nothing and log nothing.
        The log entry names who made the change (``by``, ``role``: the token's
        name and role), beside the entries before and after.

        Returns:
            The entries they replaced (None: there were none).

        Raises:
            ValueError: ``month`` is not ``YYYY-MM``.
            StateUnavailable: Redis did not answer.
        """
        parse_month(month)
        keys = self.state.park(park)
        field = f"{month}:{enterprise}"
        new = pack(entries.model_dump(mode="json"))
        async with self.state.guard("ledger_entries"):
            old = await self.state.redis.hget(keys.ledger_entries, field)
            if old == new:
                return MonthEntries.model_validate(unpack(old))
            await self.state.redis.hset(keys.ledger_entries, field, new)
        before = None if old is None else MonthEntries.model_validate(unpack(old))
        await self.state.append_park_log(
            park,
            "ledger.entries",
            month=month,
            enterprise=enterprise,
            by=by,
            role=role,
            data=pack(
                {
                    "before": None if before is None else before.model_dump(mode="json"),
                    "after": entries.model_dump(mode="json"),
                }
            ),
        )
        return before

    async def certificate_holders(
        self, park: str, month: str, enterprise: str
    ) -> dict[str, tuple[str, str]]:
        """Certificate id -> (month, enterprise) of every other entry of the park that claims it.

        The entries of ``month`` and ``enterprise`` themselves are left out,
        so a replay or a change that keeps its own certificates is not a clash.
        """
        held = await self.months(park, "2000-01", "2099-12")
        return {
            cert: key
            for key, entries in sorted(held.items())
            if key != (month, enterprise)
            for green in entries.green_power
            for cert in green.certificates
        }

    async def get(self, park: str, month: str, enterprise: str) -> MonthEntries | None:
        """``enterprise``'s entries of ``month``; None when none were entered."""
        async with self.state.guard("ledger_entries"):
            raw = await self.state.redis.hget(
                self.state.park(park).ledger_entries, f"{month}:{enterprise}"
            )
        return None if raw is None else MonthEntries.model_validate(unpack(raw))

    async def months(self, park: str, first: str, last: str) -> dict[tuple[str, str], MonthEntries]:
        """Every enterprise's entries of the months ``first``..``last`` (``YYYY-MM``, inclusive).

        Returns:
            (month, enterprise) -> its entries.
        """
        async with self.state.guard("ledger_entries"):
            stored = await self.state.redis.hgetall(self.state.park(park).ledger_entries)
        found: dict[tuple[str, str], MonthEntries] = {}
        for raw_field, raw in stored.items():
            field = raw_field.decode() if isinstance(raw_field, bytes) else str(raw_field)
            month, _, enterprise = field.partition(":")
            if first <= month <= last:
                found[(month, enterprise)] = MonthEntries.model_validate(unpack(raw))
        return found


def certificate_errors(
    entries: MonthEntries, holders: Mapping[str, tuple[str, str]]
) -> list[FieldError]:
    """``green_power[i].certificates[j]`` of each certificate claimed twice.

    Args:
        entries: the entries to store.
        holders: certificate id -> (month, enterprise) of the park's other
            entries that claim it (`EntryStore.certificate_holders`).

    Returns:
        An error per certificate repeated in ``entries`` (after its first) or
        held by another entry, naming where it is claimed already.
    """
    errors: list[FieldError] = []
    seen: dict[str, str] = {}
    for i, green in enumerate(entries.green_power):
        for j, cert in enumerate(green.certificates):
            name = f"green_power[{i}].certificates[{j}]"
            if cert in seen:
                message = f"certificate {cert!r} is claimed already in this body ({seen[cert]})"
                errors.append(FieldError(name, message, "duplicate"))
            elif cert in holders:
                month, enterprise = holders[cert]
                message = (
                    f"certificate {cert!r} is claimed already by the entries of {enterprise}"
                    f" for {month}: a certificate counts once"
                )
                errors.append(FieldError(name, message, "duplicate"))
            seen.setdefault(cert, name)
    return errors
