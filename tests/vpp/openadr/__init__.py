"""Tests of vpp.openadr (the VEN) against the VTN simulator on loopback."""
