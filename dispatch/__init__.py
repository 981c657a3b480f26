"""Dispatch engine: flexibility envelopes, aggregation, bids, disaggregation, baselines.

A pure library (numpy, scipy, OR-Tools). Power is positive when drawn from the
grid; *up* means the portfolio consumes more than its baseline (valley filling),
*down* that it consumes less (peak shaving). Every asset is a generalized
battery on a :class:`TimeGrid` (see :mod:`dispatch.portfolio`).

Entry points:

* envelopes: :func:`battery_envelope`, :func:`ev_envelope`, ... then
  :func:`build_portfolio`;
* :func:`build_bid` -> :class:`Bid` (certified by a delivered dispatch);
* :func:`disaggregate` -> :class:`Dispatch` (never infeasible; shortfall reported);
* :func:`check_dispatch` (independent judge), :func:`exact_bid` and
  :func:`exact_dispatch` (the relaxed exact LP reference), :func:`tight_bid` (the
  physically tight reference: no simultaneous charge and discharge);
* baselines: :class:`RecentAverage`, :class:`HighXOfY`, :func:`same_day_adjusted`,
  :func:`pre_event_baseline`, and their vectorised parts over many series
  (:func:`recent_days`, :func:`highest_days`, :func:`mean_of_days`,
  :func:`adjustment_ratio`, :func:`known_mean`).
"""

from dispatch.aggregate import (
    FlexibilityEnvelope,
    cluster_labels,
    cluster_model,
    flexibility_envelope,
)
from dispatch.baselines import (
    BaselineMethod,
    DayHistory,
    HighXOfY,
    RecentAverage,
    adjustment_ratio,
    highest_days,
    known_mean,
    mean_of_days,
    pre_event_baseline,
    recent_days,
    same_day_adjusted,
)
from dispatch.bids import Bid, BidSettings, DirectionBid, PriceCurve, apply_rules, build_bid
from dispatch.checker import Violation, check_dispatch
from dispatch.disaggregate import Dispatch, disaggregate
from dispatch.envelopes import (
    Battery,
    CurtailableLoad,
    EvSession,
    PvCurtailment,
    ShiftableLoad,
    ThermalLoad,
    battery_envelope,
    build_portfolio,
    curtailable_envelope,
    departure_lapsed,
    elapsed_in_first_interval_h,
    ev_envelope,
    pv_envelope,
    shiftable_envelope,
    thermal_envelope,
)
from dispatch.exact import Direction, ExactResult, exact_bid, exact_dispatch
from dispatch.grid import TimeGrid
from dispatch.portfolio import FlexKind, Portfolio
from dispatch.tight import TightResult, tight_bid

__all__ = [
    "BaselineMethod",
    "Battery",
    "Bid",
    "BidSettings",
    "CurtailableLoad",
    "DayHistory",
    "Direction",
    "DirectionBid",
    "Dispatch",
    "EvSession",
    "ExactResult",
    "FlexKind",
    "FlexibilityEnvelope",
    "HighXOfY",
    "Portfolio",
    "PriceCurve",
    "PvCurtailment",
    "RecentAverage",
    "ShiftableLoad",
    "ThermalLoad",
    "TightResult",
    "TimeGrid",
    "Violation",
    "adjustment_ratio",
    "apply_rules",
    "battery_envelope",
    "build_bid",
    "build_portfolio",
    "check_dispatch",
    "cluster_labels",
    "cluster_model",
    "curtailable_envelope",
    "departure_lapsed",
    "disaggregate",
    "elapsed_in_first_interval_h",
    "ev_envelope",
    "exact_bid",
    "exact_dispatch",
    "flexibility_envelope",
    "highest_days",
    "known_mean",
    "mean_of_days",
    "pre_event_baseline",
    "pv_envelope",
    "recent_days",
    "same_day_adjusted",
    "shiftable_envelope",
    "thermal_envelope",
    "tight_bid",
]
