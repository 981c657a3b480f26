"""Tests of vpp.supervisor: adapters per asset group, live state, setpoints."""
