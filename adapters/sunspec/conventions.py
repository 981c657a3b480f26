"""Sign conventions of battery and meter power on the wire, enrolled per device.

SunSpec model 802 (battery) states no sign for ``W`` and vendors differ: some
report charging as positive (a load), others discharging (a generator). Model
704 ``WSet`` follows the DER convention of the 7xx models in the SunSpec DER
information model (positive = active power injected into the grid), but a
device's firmware is the final word. So each sign is an enrolled property of
the device, never a guess; the service's own sign (``power_kw`` positive =
drawn from the grid, i.e. charging) is fixed in :mod:`adapters.types`.

Meters (SunSpec models 201-204): the model definitions (SunSpec models
repository, ``json/model_201.json`` .. ``model_204.json``, point ``W``
"Total Real Power", int16) state no sign for ``W`` either; only the energy
accumulators name their direction (``TotWhImp`` "Total Real Energy Imported",
``TotWhExp`` "Total Real Energy Exported"). Meters commonly count import as
positive, but vendors differ (an inverter's export/import meter often reports
export as positive: e.g. SolarEdge's, WillCodeForCats/solaredge-modbus-multi
issue 69). A meter's ``W`` sign is therefore enrolled like a battery's, with
the same two values: :attr:`PowerSign.CHARGE_POSITIVE` (the default) reads
positive ``W`` as drawn from the grid (import), :attr:`PowerSign.DISCHARGE_POSITIVE`
as fed into it (export); the Modbus adapter checks it against which
accumulator advances.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PowerSign", "from_device_w", "to_device_w"]


class PowerSign(StrEnum):
    """Which direction of power a device's register counts as positive."""

    #: positive while drawn from the grid: a battery charging (802 ``W`` as we assumed
    #: so far), a meter importing (201-204 ``W``, the meters' common reading)
    CHARGE_POSITIVE = "charge_positive"
    #: positive while fed into the grid: a battery discharging (the DER convention of
    #: 704 ``WSet``), a meter exporting
    DISCHARGE_POSITIVE = "discharge_positive"


def from_device_w(watts: float, sign: PowerSign) -> float:
    """A device's power register in watts -> the service's ``power_kw`` (positive = charging).

    Args:
        watts: the register's engineering value (scale factor applied), in W.
        sign: the device's enrolled convention for that register.
    """
    kw = watts / 1000.0
    return kw if sign is PowerSign.CHARGE_POSITIVE else -kw


def to_device_w(power_kw: float, sign: PowerSign) -> float:
    """The service's ``power_kw`` (positive = charging) -> a device register's watts.

    Args:
        power_kw: power in kW, positive = drawn from the grid.
        sign: the device's enrolled convention for the register written.
    """
    watts = power_kw * 1000.0
    return watts if sign is PowerSign.CHARGE_POSITIVE else -watts
