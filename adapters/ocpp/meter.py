"""One decoder for every OCPP 2.0.1 / 2.1 sampled value (MeterValues and TransactionEvent).

A ``meterValue`` is ``{"timestamp", "sampledValue": [...]}``; each sampled
value carries ``value`` plus optional ``measurand`` (default
``Energy.Active.Import.Register``), ``phase``, ``location`` (default
``Outlet``), ``context`` (default ``Sample.Periodic``) and ``unitOfMeasure``
``{"unit", "multiplier"}`` (OCPP 2.0.1 part 2, SampledValueType and
UnitOfMeasureType; 2.1 adds measurands and the ``Upstream`` location).

:func:`decode` turns them into :class:`Sample` values in the measurand's base
unit (W, Wh, Percent, A, V...): the unit is converted (kW -> W, kWh -> Wh),
the multiplier applied (value x 10^multiplier), a missing unit read as the
measurand's standard unit (the spec's unit table: W for power, Wh for energy,
Percent for SoC...). Each bad field (not a number, an impossible SoC, a unit
of the wrong dimension) is dropped alone through the :data:`Reject` sink.

:func:`pick` reads one quantity from a message's samples: the newest
timestamp, the preferred location, then the phase-less total if there is
one, else the sum of the phases. Phases follow the spec's PhaseEnumType:
``L1``/``L2``/``L3`` and ``L1-N``/``L2-N``/``L3-N`` name the same
line-to-neutral quantity (one per line is counted), ``L1-L2``... are
line-to-line (summed only when nothing line-to-neutral is given), ``N`` is
the neutral conductor (never added).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.ocpp.fields import Reject, number, timestamp

__all__ = [
    "LIVE_CONTEXTS",
    "POWER_LOCATIONS",
    "SOC_LOCATIONS",
    "Sample",
    "decode",
    "field_name",
    "pick",
]

#: Contexts whose reading describes the present (power "now"); Transaction.Begin
#: / .End, Sample.Clock and Interruption.* readings are taken at a past instant.
LIVE_CONTEXTS = frozenset({"Sample.Periodic", "Trigger", "Other"})
#: Where the EVSE's own power is measured, preferred first (``Outlet``: what the
#: EV gets; ``Inlet``: the station's grid side; ``Upstream`` and ``Body`` are not
#: the EVSE's power and never used).
POWER_LOCATIONS = ("Outlet", "Inlet", "Cable", "EV")
#: Where the EV's SoC comes from, preferred first (the EV itself reports it;
#: many chargers leave the location at its ``Outlet`` default).
SOC_LOCATIONS = ("EV", "Outlet", "Cable", "Inlet")

_DEFAULT_MEASURAND = "Energy.Active.Import.Register"

# unit -> (base unit, factor to it). Names from the spec's "Standardized Units
# of Measurements" (part 2 appendices).
_UNITS: dict[str, tuple[str, float]] = {
    "W": ("W", 1.0), "kW": ("W", 1e3),
    "Wh": ("Wh", 1.0), "kWh": ("Wh", 1e3),
    "var": ("var", 1.0), "kvar": ("var", 1e3),
    "varh": ("varh", 1.0), "kvarh": ("varh", 1e3),
    "VA": ("VA", 1.0), "kVA": ("VA", 1e3),
    "VAh": ("VAh", 1.0), "kVAh": ("VAh", 1e3),
    "A": ("A", 1.0), "V": ("V", 1.0), "Hz": ("Hz", 1.0), "s": ("s", 1.0),
    "Percent": ("Percent", 1.0), "Celsius": ("Celsius", 1.0),
}  # fmt: skip
# Spellings seen in the field that are unambiguous (never "mw"/"MW": milli or mega).
_ALIASES = {
    "w": "W", "kw": "kW", "wh": "Wh", "kwh": "kWh", "percent": "Percent", "%": "Percent",
    "a": "A", "v": "V",
}  # fmt: skip

# Measured quantity -> its base unit, by measurand prefix, most specific first.
_BASE_UNITS: tuple[tuple[str, str | None], ...] = (
    ("Energy.Reactive", "varh"),
    ("Energy.Apparent", "VAh"),
    ("Energy", "Wh"),
    ("EnergyRequest", "Wh"),
    ("Display.BatteryEnergyCapacity", "Wh"),
    ("Display.RemainingTime", "s"),
    ("Display.InletHot", None),
    ("Display.ChargingComplete", None),
    ("Display.", "Percent"),
    ("Power.Reactive", "var"),
    ("Power.Factor", None),
    ("Power", "W"),
    ("Current", "A"),
    ("Voltage", "V"),
    ("Frequency", "Hz"),
    ("SoC", "Percent"),
    ("Temperature", "Celsius"),
)

# Plausible bounds in base units; outside them a value is a fault, not a reading.
_MAX_W = 5e6  # a megawatt charging system for trucks is ~3.75 MW
_BOUNDS: dict[str, tuple[float, float]] = {
    "W": (-_MAX_W, _MAX_W),
    "var": (-_MAX_W, _MAX_W),
    "VA": (-_MAX_W, _MAX_W),
    "Wh": (-1e12, 1e12),
    "Percent": (0.0, 100.0),
    "A": (-1e4, 1e4),
    "V": (0.0, 2e3),
    "Hz": (0.0, 1e3),
}

# Device-language names for the quantities the adapter publishes (as counted
# in ``AdapterStats.rejected_fields``); other measurands count under their own name.
_FIELD_NAMES = {
    "Power.Active.Import": "power_kw",
    "Power.Active.Export": "power_kw",
    "SoC": "soc",
    "Energy.Active.Import.Register": "energy_kwh",
    "Energy.Active.Export.Register": "energy_kwh",
}


def field_name(measurand: str) -> str:
    """The name a rejected sample of ``measurand`` is counted under."""
    return _FIELD_NAMES.get(measurand, measurand)


def _base_unit(measurand: str) -> str | None:
    for prefix, unit in _BASE_UNITS:
        if measurand.startswith(prefix):
            return unit
    return None


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampled value, in its measurand's base unit.

    Attributes:
        measurand: e.g. ``Power.Active.Import``.
        value: in the base unit (W, Wh, Percent, A, V...), multiplier applied.
        phase: ``L1``, ``L2-N``... or None for a total.
        location: ``Outlet`` (default), ``Inlet``, ``EV``...
        context: ``Sample.Periodic`` (default), ``Transaction.Begin``...
        ts: the meterValue's timestamp (UNIX seconds), None if unreadable.
    """

    measurand: str
    value: float
    phase: str | None
    location: str
    context: str
    ts: float | None


def _text(raw: dict[str, Any], key: str, default: str | None) -> str | None:
    value = raw.get(key, default)
    return value if isinstance(value, str) else default


def _sample(raw: object, ts: float | None, reject: Reject) -> Sample | None:
    if not isinstance(raw, dict):
        reject("sampledValue", "not_an_object", raw)
        return None
    measurand = _text(raw, "measurand", _DEFAULT_MEASURAND) or _DEFAULT_MEASURAND
    name = field_name(measurand)
    base = _base_unit(measurand)
    unit_of_measure = raw.get("unitOfMeasure")
    uom = unit_of_measure if isinstance(unit_of_measure, dict) else {}
    unit = uom.get("unit")
    multiplier = uom.get("multiplier", 0)
    if isinstance(multiplier, bool) or not isinstance(multiplier, int) or abs(multiplier) > 9:
        reject(name, "unit", multiplier)
        return None
    factor = 1.0
    if unit is not None:
        spelled = unit if isinstance(unit, str) else ""
        known = _UNITS.get(spelled) or _UNITS.get(_ALIASES.get(spelled.strip().lower(), ""))
        if known is None or (base is not None and known[0] != base):
            reject(name, "unit", unit)
            return None
        base, factor = known
    value = number(raw.get("value"), name, reject)
    if value is None:
        if "value" not in raw:
            reject(name, "missing", None)
        return None
    value *= factor * 10.0**multiplier
    lo, hi = _BOUNDS.get(base or "", (-math.inf, math.inf))
    if measurand.endswith(".Register") and base == "Wh":
        lo = 0.0  # a register counts up from zero
    if not lo <= value <= hi:
        reject(name, "out_of_range", raw.get("value"))
        return None
    return Sample(
        measurand=measurand,
        value=value,
        phase=_text(raw, "phase", None),
        location=_text(raw, "location", "Outlet") or "Outlet",
        context=_text(raw, "context", "Sample.Periodic") or "Sample.Periodic",
        ts=ts,
    )


def decode(meter_values: object, reject: Reject) -> list[Sample]:
    """Every readable sampled value of a ``meterValue`` array.

    Args:
        meter_values: the raw ``meterValue`` array (anything: a schema-invalid
            message is read as far as it goes).
        reject: the sink for each dropped field.

    Returns:
        The samples that passed, in message order.
    """
    if meter_values is None:
        return []
    if not isinstance(meter_values, list):
        reject("meterValue", "not_a_list", meter_values)
        return []
    samples: list[Sample] = []
    for mv in meter_values:
        if not isinstance(mv, dict):
            reject("meterValue", "not_an_object", mv)
            continue
        ts = timestamp(mv.get("timestamp"), "timestamp", reject)
        sampled = mv.get("sampledValue")
        if not isinstance(sampled, list):
            reject("sampledValue", "not_a_list", sampled)
            continue
        for raw in sampled:
            sample = _sample(raw, ts, reject)
            if sample is not None:
                samples.append(sample)
    return samples


def _line(phase: str) -> str:
    return phase.removesuffix("-N")


def _total(group: Sequence[Sample]) -> float | None:
    """Phase-less total first, else the line-to-neutral phases, else line-to-line."""
    totals = [s.value for s in group if s.phase is None]
    if totals:
        return totals[-1]
    wye: dict[str, float] = {}
    for s in group:
        if s.phase in ("L1", "L2", "L3", "L1-N", "L2-N", "L3-N"):
            line = _line(s.phase)
            # Plain "L1" wins over "L1-N" for the same line (they name one quantity).
            if line not in wye or s.phase == line:
                wye[line] = s.value
    if wye:
        return sum(wye.values())
    delta = {s.phase: s.value for s in group if s.phase in ("L1-L2", "L2-L3", "L3-L1")}
    return sum(delta.values()) if delta else None


@dataclass(frozen=True, slots=True)
class Picked:
    """One quantity read from a message.

    Attributes:
        value: the total in the base unit.
        ts: when it was measured (None: undated).
        context: the reading context of the samples it came from.
    """

    value: float
    ts: float | None
    context: str


def pick(
    samples: Iterable[Sample],
    measurand: str,
    *,
    locations: Sequence[str] = POWER_LOCATIONS,
    contexts: Collection[str] | None = None,
) -> Picked | None:
    """Read one quantity: newest timestamp, preferred location, total or phase sum.

    Args:
        samples: decoded samples of one message.
        measurand: the quantity.
        locations: acceptable locations, preferred first.
        contexts: acceptable reading contexts (None: any).

    Returns:
        The quantity, or None if the message has no usable sample of it.
    """
    group = [
        s
        for s in samples
        if s.measurand == measurand
        and s.location in locations
        and (contexts is None or s.context in contexts)
    ]
    if not group:
        return None
    newest = max((s.ts for s in group if s.ts is not None), default=None)
    group = [s for s in group if s.ts == newest]
    for location in locations:
        here = [s for s in group if s.location == location]
        value = _total(here)
        if value is not None:
            return Picked(value=value, ts=newest, context=here[-1].context)
    return None
