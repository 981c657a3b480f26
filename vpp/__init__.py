"""The park VPP aggregation service.

Enrollment of flexible assets, their live state in Redis, the HTTP API, auth,
metrics and the command line. The grid-side interfaces (OpenADR VEN), the
control loop and the mapping onto ``adapters`` and ``dispatch`` build on the
modules listed here.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
