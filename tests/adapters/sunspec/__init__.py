"""Tests of adapters.sunspec: the SunSpec point codec."""
