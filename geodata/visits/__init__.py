"""The RM's day in the database (issue 16): plans and routes, check-ins, visit tasks, the weekly report.

One function per change, connection first: :func:`plans.plan_for`, :func:`plans.add_stop`,
:func:`plans.remove_stop`, :func:`plans.reroute`, :func:`checkins.check_in`,
:func:`checkins.check_out`, :func:`tasks.create_task`; reads in :mod:`geodata.reads.visits`,
:func:`tasks.list_tasks` and :func:`report.week_report`. Scope is applied in SQL (``geodata.scope``).
"""
