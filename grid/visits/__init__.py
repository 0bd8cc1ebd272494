"""The RM's day: which customers to visit and why (:mod:`~grid.visits.plan`), and in what order
(:mod:`~grid.visits.route`). Pure computation: callers bring the rows and the weights text
(``grid/visits/visit_weights.toml`` is the packaged default, for callers to read)."""

from grid.visits.clock import clock_to_minutes, minutes_to_clock
from grid.visits.distances import distance_to_duration, points_to_distance_matrix
from grid.visits.plan import PLAN_COLUMNS, plan_day, score_candidates
from grid.visits.route import DROP_REASONS, DayRoute
from grid.visits.solver import nearest_neighbour_order
from grid.visits.weights import VisitWeights

__all__ = [
    "DROP_REASONS",
    "PLAN_COLUMNS",
    "DayRoute",
    "VisitWeights",
    "clock_to_minutes",
    "distance_to_duration",
    "minutes_to_clock",
    "nearest_neighbour_order",
    "plan_day",
    "points_to_distance_matrix",
    "score_candidates",
]
