"""OCPP 2.0.1 / 2.1 for EV chargers: the CSMS adapter and its wire builders."""

from adapters.ocpp.csms import ChargerSettings, OcppCsmsAdapter
from adapters.ocpp.profiles import (
    OCPP_SUBPROTOCOLS,
    clear_profile_request,
    set_profile_request,
)

__all__ = [
    "OCPP_SUBPROTOCOLS",
    "ChargerSettings",
    "OcppCsmsAdapter",
    "clear_profile_request",
    "set_profile_request",
]
