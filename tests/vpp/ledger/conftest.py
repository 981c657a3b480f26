"""Fixtures of the ledger tests: a book on the test's Redis namespace."""

from __future__ import annotations

import pytest

from tests.vpp.ledger.support import RETENTION_DAYS
from vpp.history.store import HistoryStore
from vpp.ledger.book import LedgerBook
from vpp.ledger.entries import EntryStore
from vpp.settings import LedgerSettings
from vpp.state import State


@pytest.fixture
def book(state: State) -> LedgerBook:
    return LedgerBook(
        state,
        HistoryStore(state, retention_days=RETENTION_DAYS),
        EntryStore(state),
        LedgerSettings(close_after_days=5),
    )
