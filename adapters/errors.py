"""The adapters' exception tree.

::

    AdapterError
     ├── UnknownAsset        (a setpoint names an asset this adapter does not serve)
     ├── PayloadError        (an incoming payload could not be decoded or is out of range)
     └── DeviceError         (the device answered, but not as the protocol says)
          └── SunSpecError   (no SunSpec marker, or a required model is missing)

Transport failures never escape an adapter's background tasks: they are
logged, counted and followed by a reconnect. ``apply`` reports a failed send
as an unconfirmed :class:`adapters.types.Confirmation` rather than raising.
"""

from __future__ import annotations

__all__ = ["AdapterError", "DeviceError", "PayloadError", "SunSpecError", "UnknownAsset"]


class AdapterError(Exception):
    """Base of every error raised by :mod:`adapters`."""


class UnknownAsset(AdapterError, KeyError):
    """A setpoint or query named an asset the adapter was not configured with.

    Attributes:
        asset_id: the unknown id.
    """

    def __init__(self, asset_id: str) -> None:
        self.asset_id = asset_id
        super().__init__(f"unknown asset {asset_id!r}")

    def __str__(self) -> str:
        return f"unknown asset {self.asset_id!r}"


class PayloadError(AdapterError, ValueError):
    """An incoming payload was malformed or out of range.

    Attributes:
        detail: what was wrong with it.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class DeviceError(AdapterError):
    """A device answered against its protocol."""


class SunSpecError(DeviceError):
    """A SunSpec device lacks its marker or a model the adapter needs.

    Attributes:
        model_id: the missing model, or None when the marker itself is missing.
    """

    def __init__(self, detail: str, model_id: int | None = None) -> None:
        self.model_id = model_id
        super().__init__(detail)
