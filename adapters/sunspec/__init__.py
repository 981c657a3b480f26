"""SunSpec register maps: model definitions and a codec shared by adapter and simulator.

The model JSON files here (common model 1, battery model 802, DER AC
controls model 704) are the SunSpec Alliance's public definitions as shipped
by pysunspec2 1.3.7 (Apache-2.0, see ``LICENSE-pysunspec2.txt``), unchanged.
:mod:`~adapters.sunspec.codec` reads every point through one decoder that
knows each type's "not implemented" value; :mod:`~adapters.sunspec.conventions`
holds the enrolled sign conventions of battery power (802 ``W``, 704 ``WSet``).
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

__all__ = [
    "BASE_ADDRESSES",
    "END_MODEL_ID",
    "SUNS_MARKER",
    "Block",
    "EncodeError",
    "Model",
    "Point",
    "PowerSign",
    "build_image",
    "load_model",
]
