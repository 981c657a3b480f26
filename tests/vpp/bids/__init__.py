"""Tests of vpp.bids: the stored bid, its record and table forms."""
