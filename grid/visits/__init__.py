"""The RM's day: which customers to visit and why (:mod:`~grid.visits.plan`), and in what order
(:mod:`~grid.visits.route`). Pure computation: callers bring the rows and the weights text."""

from grid.visits.clock import clock_to_minutes, minutes_to_clock
from grid.visits.distances import distance_to_duration, points_to_distance_matrix
from grid.visits.route import DROP_REASONS, DayRoute, nearest_neighbour_order

__all__ = [
    "DROP_REASONS",
    "DayRoute",
    "clock_to_minutes",
    "distance_to_duration",
    "minutes_to_clock",
    "nearest_neighbour_order",
    "points_to_distance_matrix",
]
