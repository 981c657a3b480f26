"""SunSpec register maps: model definitions and a codec shared by adapter and simulator.

The model JSON files here (common model 1, battery model 802, DER AC
controls model 704, and the integer meter models 201 single phase, 202 split
phase, 203 wye three-phase, 204 delta three-phase) are the SunSpec Alliance's
public definitions (Apache-2.0, see ``LICENSE-pysunspec2.txt``), unchanged:
1, 704 and 802 as shipped by pysunspec2 1.3.7, 201-204 from the SunSpec
models repository (``json/model_20x.json``, byte-identical to it, as 1, 704
and 802 are). The four meter models share one layout for every point the
adapters read (``W``, ``W_SF``, ``TotWhExp``, ``TotWhImp``, ``TotWh_SF``
at the same offsets; :data:`METER_MODEL_IDS`).
:mod:`~adapters.sunspec.codec` reads every point through one decoder that
knows each type's "not implemented" value; :mod:`~adapters.sunspec.conventions`
holds the enrolled sign conventions of battery and meter power (802 ``W``,
704 ``WSet``, 201-204 ``W``).
"""

from adapters.sunspec.codec import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    SUNS_MARKER,
    Block,
    EncodeError,
    Model,
    Point,
    build_image,
    load_model,
)
from adapters.sunspec.conventions import PowerSign

#: The SunSpec meter models (integer registers with scale factors), in the
#: order a device's map is searched for one: 201 single phase (AN or AB),
#: 202 split phase (ABN), 203 wye three-phase (ABCN), 204 delta three-phase (ABC).
METER_MODEL_IDS = (201, 202, 203, 204)

__all__ = [
    "BASE_ADDRESSES",
    "END_MODEL_ID",
    "METER_MODEL_IDS",
    "SUNS_MARKER",
    "Block",
    "EncodeError",
    "Model",
    "Point",
    "PowerSign",
    "build_image",
    "load_model",
]
