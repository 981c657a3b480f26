"""Sign conventions of battery power on the wire, enrolled per device.

SunSpec model 802 (battery) states no sign for ``W`` and vendors differ: some
report charging as positive (a load), others discharging (a generator). Model
704 ``WSet`` follows the DER convention of the 7xx models in the SunSpec DER
information model (positive = active power injected into the grid), but a
device's firmware is the final word. So each sign is an enrolled property of
the device, never a guess; the service's own sign (``power_kw`` positive =
drawn from the grid, i.e. charging) is fixed in :mod:`adapters.types`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PowerSign", "from_device_w", "to_device_w"]


class PowerSign(StrEnum):
    """Which direction of battery power a device's register counts as positive."""

    #: positive while the battery charges (draws from the grid): 802 ``W`` as we assumed so far
    CHARGE_POSITIVE = "charge_positive"
    #: positive while the battery discharges (feeds the grid): the DER convention of 704 ``WSet``
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
