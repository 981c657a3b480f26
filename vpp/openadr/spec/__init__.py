"""The OpenADR 3.1.1 specification files the VEN validates against (package data).

``openadr3.yaml`` and ``enumerations/{event-interval-payloads,report-payloads}.schema.yaml``
are copied unchanged from the OpenADR Alliance's 3.1.1 release, which is
licensed under the Apache License 2.0 (``LICENSE`` and ``NOTICE`` here). The
two known defects of the YAML are patched at load time, not in these files
(see :data:`vpp.openadr.schema.ERRATA`).

No Python API on purpose: this package only carries the files, which
:func:`vpp.openadr.schema.locate_spec` finds as package data.
"""

__all__: list[str] = []
