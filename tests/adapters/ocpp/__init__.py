"""Tests of adapters.ocpp: the CSMS adapter and its decoders."""
