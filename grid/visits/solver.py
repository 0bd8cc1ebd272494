"""The two ways of ordering a day: PyVRP (prize-collecting VRP with time windows for one vehicle) and
the nearest-neighbour baseline it is measured against (and warm-started from). Both take integer
metres and seconds over ``[start] + stops`` and return stop indices in visiting order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grid.errors import VisitError


def nearest_neighbour_order(d, t, early, late, service, day_end: int, leave: int, candidates: Sequence[int],
                            back: bool = True) -> list[int]:
    """The baseline: from where the RM is, drive to the nearest stop that can still be served and the
    day finished in time; stop when none can. Returns stop indices (0-based, matrix index - 1).

    Examples
    --------
    >>> d = np.array([[0, 5, 1], [5, 0, 4], [1, 4, 0]])
    >>> nearest_neighbour_order(d, d, np.zeros(2, int), np.full(2, 100), np.zeros(2, int), 100, 0, [0, 1])
    [1, 0]
    """
    left = set(candidates)
    order: list[int] = []
    now, prev = leave, 0
    while left:
        best = None
        for j in sorted(left):
            start = max(now + int(t[prev, j + 1]), int(early[j]))
            if start > late[j]:
                continue
            if start + int(service[j]) + (int(t[j + 1, 0]) if back else 0) > day_end:
                continue
            key = (int(d[prev, j + 1]), j)
            if best is None or key < best[0]:
                best = (key, j, start)
        if best is None:
            break
        _, j, start = best
        order.append(j)
        left.discard(j)
        now, prev = start + int(service[j]), j + 1
    return order


def solve_pyvrp(d, t, early, late, service, day_end: int, leave: int, candidates: Sequence[int], *,
                priority: np.ndarray, required: np.ndarray, back: bool, stop_value_km: float,
                time_limit_s: float, seed: int, no_improvement: int | None,
                max_iterations: int | None) -> list[int]:
    """Prize-collecting VRP with time windows for one vehicle; returns stop indices in order."""
    if not candidates:
        return []
    import pyvrp
    from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria, NoImprovement

    k = len(candidates)
    rows = [0] + [c + 1 for c in candidates]
    dm = d[np.ix_(rows, rows)]
    tm = t[np.ix_(rows, rows)]
    if not back:
        # a free end point: zero from every stop, unreachable from the start
        dm = np.pad(dm, ((0, 1), (0, 1)))
        tm = np.pad(tm, ((0, 1), (0, 1)))
    value = stop_value_km * 1000.0
    prizes = np.rint(value * priority[candidates]).astype(np.int64)
    # a task outweighs every ordinary stop together and any detour
    task_prize = int(prizes[~required[candidates]].sum() + dm.max() * (k + 2) + 1)
    depots = [pyvrp.Depot(0, tw_early=leave, tw_late=day_end)]
    end = 0
    if not back:
        depots.append(pyvrp.Depot(k + 1, tw_early=leave, tw_late=day_end))
        end = 1
    clients = [
        pyvrp.Client(j + 1, service_duration=int(service[c]), tw_early=int(early[c]), tw_late=int(late[c]),
                     prize=task_prize if required[c] else int(prizes[j]), required=False)
        for j, c in enumerate(candidates)
    ]
    locations = [pyvrp.Location(0.0, 0.0) for _ in range(dm.shape[0])]
    vehicle = pyvrp.VehicleType(1, capacity=[], start_depot=0, end_depot=end, tw_early=leave, tw_late=day_end)
    data = pyvrp.ProblemData(locations, clients, depots, [vehicle], [dm], [tm])
    stops = [MaxRuntime(float(time_limit_s))]
    if no_improvement:
        stops.append(NoImprovement(int(no_improvement)))
    if max_iterations:
        stops.append(MaxIterations(int(max_iterations)))
    # start from the nearest-neighbour route: a feasible day at once, so a short search already
    # begins from a full schedule instead of a random one
    nn = nearest_neighbour_order(d, t, early, late, service, day_end, leave, candidates, back)
    pos = {c: j for j, c in enumerate(candidates)}
    init = pyvrp.Solution(data, [[pos[c] for c in nn]]) if nn else None
    res = pyvrp.solve(data, MultipleCriteria(stops), seed=int(seed), collect_stats=False, display=False,
                      initial_solution=init)
    best = res.best
    if not best.is_feasible():
        raise VisitError("the route solver found no feasible route")
    return [candidates[a.idx] for r in best.routes() for a in r.schedule() if a.is_client()]
