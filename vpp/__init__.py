"""The park VPP aggregation service.

Enrollment of flexible assets, their live state in Redis, the HTTP API, auth,
metrics and the command line; the grid-side interfaces (the REST API and the
OpenADR VEN), the closed-loop control and the mapping of enrolled assets onto
``adapters`` (device supervision) and ``dispatch`` (envelopes, bids,
setpoints). Where to start reading:

* ``vpp.cli`` (the ``vpp`` command), ``vpp.service`` and ``vpp.runtime``
  (what runs beside the HTTP app), ``vpp.settings``;
* ``vpp.model`` (parks, assets, live state), ``vpp.state`` and ``vpp.keys``
  (Redis);
* ``vpp.api`` (the HTTP API), ``vpp.openadr`` (the VEN),
  ``vpp.supervisor`` (the device adapters), ``vpp.control`` and ``vpp.flex``
  (the control loop and its portfolio), ``vpp.events`` (events, their store,
  expected delivery and report) and ``vpp.bids``.

No re-exports on purpose: the service is a set of modules imported by path
(``from vpp.state import State``), so importing ``vpp`` stays cheap and
cannot tie its modules into a cycle. ``vpp.api``, ``vpp.bids``,
``vpp.events``, ``vpp.openadr`` and ``vpp.supervisor`` have faces of their own.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
