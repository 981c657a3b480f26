"""Tests of the dispatch package: envelopes, bids, disaggregation, the checker."""
