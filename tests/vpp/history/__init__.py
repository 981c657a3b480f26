"""Tests of vpp.history: the interval store, the recorder that writes it from telemetry."""
