"""The first big load of an empty table: COPY into a fresh copy of it, index that copy in two sessions, swap.

In one transaction PostgreSQL builds one index after the other, and the GiST
index of a million points alone takes about as long as the btrees together.
So a big load into an empty target goes like this:

1. In the import's transaction, a new table shaped like the target (defaults,
   NOT NULL and CHECK constraints, no indexes) is created and filled by COPY
   FREEZE; with ``wal_level = minimal`` that writes no WAL. The transaction
   commits: the rows are stored, but not yet in the target, which readers
   still see empty.
2. Two sessions build the target's indexes on the new table side by side
   (under a SHARE lock both may; the GiST goes to one, the btrees to the other).
3. One short transaction locks the target, checks that it is still empty,
   drops it, renames the new table and its indexes to the old names, turns
   the unique indexes back into their primary key / unique constraints and
   adds the foreign keys (checked, as any constraint added to filled table).

Any error on the way drops the new table: the target is never half-written.
A table left behind by a killed process (whose session, and so its advisory
lock, is gone) is dropped by the next bulk load.
Only plain tables qualify (:func:`can_swap`): no views, rules, triggers,
policies, grants, sequences, partitions, exclusion constraints or foreign keys
pointing at them, as nothing of that kind would follow the rename.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from geodata.errors import BadInput

PREFIX = "_bulk_"
# Advisory lock class ('bu'): a load holds (LOCK_CLASS, run id) in its session while its new table exists.
LOCK_CLASS = 0x6275
# Relative cost of building one index, to split the work between the two sessions.
_COST = {"gist": 4, "spgist": 4, "gin": 4}
_INDEXDEF = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (USING .*)$", re.S)


@dataclass
class Index:
    name: str
    create: str  # the statement that builds it on the new table, under a temporary name
    temp: str
    constraint: str | None  # 'p' or 'u' when the index backs that constraint
    cost: int


@dataclass
class Plan:
    target: str
    table: str
    run_id: int
    indexes: list[Index] = field(default_factory=list)
    foreign_keys: list[tuple[str, str]] = field(default_factory=list)  # (name, definition)


def can_swap(cur, target: str) -> bool:
    """True when ``target`` can be replaced by a renamed copy without losing anything attached to it."""
    cur.execute(
        """SELECT c.relkind = 'r' AND NOT c.relispartition AND c.relacl IS NULL AND NOT c.relrowsecurity
             AND NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = c.oid OR inhrelid = c.oid)
             AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal)
             AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE confrelid = c.oid)
             AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = c.oid AND contype = 'x')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refobjid = c.oid
                               AND d.classid = 'pg_rewrite'::regclass)
             AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                               WHERE d.refobjid = c.oid)
             AND NOT EXISTS (SELECT 1 FROM pg_statistic_ext WHERE stxrelid = c.oid)
           FROM pg_class c WHERE c.oid = %s::regclass""",
        (f"public.{target}",),
    )
    return bool(cur.fetchone()[0])


def drop_stale(cur, target: str) -> list[str]:
    """Drop new tables of earlier bulk loads whose process is gone (nobody holds their lock)."""
    cur.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
        " AND c.relname LIKE %s",
        ((f"{PREFIX}{target}_").replace("_", "\\_") + "%",),
    )
    stale = []
    for (name,) in cur.fetchall():
        run = name.rsplit("_", 1)[1]
        if not run.isdigit():
            continue
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, int(run)))
        if cur.fetchone()[0]:  # its load is not running any more
            cur.execute(f'DROP TABLE IF EXISTS public."{name}"')
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, int(run)))
            stale.append(name)
    return stale


def start(cur, target: str, run_id: int) -> Plan:
    """Create the new table for ``target`` in the current transaction; returns the plan for the rest."""
    drop_stale(cur, target)
    # Held by this session until release(): another load sees that this table is in use.
    cur.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, run_id))
    plan = Plan(target=target, table=f"{PREFIX}{target}_{run_id}", run_id=run_id)
    # No autovacuum while it loads and is indexed (it would compete for the same cores); the swap
    # turns it back on, and autovacuum then analyzes the table in the background.
    cur.execute(
        f"CREATE TABLE public.{plan.table} (LIKE public.{target} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
        " INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS INCLUDING COMPRESSION)"
        " WITH (autovacuum_enabled = false)"
    )
    cur.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid), con.contype, am.amname FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam"
        " LEFT JOIN pg_constraint con ON con.conindid = i.oid AND con.conrelid = x.indrelid"
        "  AND con.contype IN ('p', 'u')"
        " WHERE x.indrelid = %s::regclass ORDER BY i.relname",
        (f"public.{target}",),
    )
    for k, (name, definition, contype, am) in enumerate(cur.fetchall()):
        m = _INDEXDEF.match(definition)
        if m is None:  # pg_get_indexdef always has this shape; refuse rather than guess
            raise RuntimeError(f"unexpected index definition: {definition}")
        temp = f"{PREFIX}{run_id}_{k}"
        plan.indexes.append(Index(name=name, temp=temp, constraint=contype, cost=_COST.get(am, 1),
                                  create=f"CREATE {m.group(1) or ''}INDEX {temp} ON public.{plan.table} {m.group(2)}"))
    cur.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass"
        " AND contype = 'f' ORDER BY conname",
        (f"public.{target}",),
    )
    plan.foreign_keys = [(n, d) for n, d in cur.fetchall()]
    return plan


def split(indexes: list[Index], sessions: int = 2) -> list[list[Index]]:
    """Indexes dealt to ``sessions`` lists of about equal cost (largest first, to the least loaded)."""
    lists: list[list[Index]] = [[] for _ in range(sessions)]
    load = [0] * sessions
    for ix in sorted(indexes, key=lambda i: -i.cost):
        j = load.index(min(load))
        lists[j].append(ix)
        load[j] += ix.cost
    return [x for x in lists if x]


def build_indexes(connect, plan: Plan, sessions: int = 2) -> None:
    """Build every index of ``plan`` on the new table, in ``sessions`` connections at once.

    ``connect()`` returns a new DB-API connection (closed here). Each session
    commits its indexes; the first error is raised once all sessions stopped.
    """
    parts = split(plan.indexes, sessions)
    errors: list[BaseException] = []

    def run(part: list[Index]) -> None:
        conn = connect()
        try:
            cur = conn.cursor()
            cur.execute("SET maintenance_work_mem = '256MB'")
            # With two sessions busy, parallel workers would only compete for the same cores.
            cur.execute(f"SET max_parallel_maintenance_workers = {2 if len(parts) == 1 else 0}")
            for ix in part:
                cur.execute(ix.create)
            conn.commit()
        except BaseException as exc:
            errors.append(exc)
            try:
                conn.rollback()
            except Exception:  # the connection may be gone; the error above is the one to report
                pass
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(p,), name=f"bulk-index-{i}") for i, p in enumerate(parts[1:])]
    for t in threads:
        t.start()
    if parts:
        run(parts[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def swap(cur, plan: Plan) -> None:
    """In the caller's transaction: replace the (still empty) target by the new table, names and keys as before."""
    t = plan.target
    cur.execute(f"LOCK TABLE public.{t} IN ACCESS EXCLUSIVE MODE")
    cur.execute(f"SELECT EXISTS (SELECT 1 FROM public.{t})")
    if cur.fetchone()[0]:
        raise BadInput(f"{t}: rows were stored by another import while this one was loading; nothing of this"
                       " file was stored. Run the import again: it then updates by key.")
    cur.execute(f"DROP TABLE public.{t}")
    cur.execute(f"ALTER TABLE public.{plan.table} RENAME TO {t}")
    cur.execute(f"ALTER TABLE public.{t} RESET (autovacuum_enabled)")
    for ix in plan.indexes:
        if ix.constraint == "p":
            cur.execute(f'ALTER TABLE public.{t} ADD CONSTRAINT "{ix.name}" PRIMARY KEY USING INDEX {ix.temp}')
        elif ix.constraint == "u":
            cur.execute(f'ALTER TABLE public.{t} ADD CONSTRAINT "{ix.name}" UNIQUE USING INDEX {ix.temp}')
        else:
            cur.execute(f'ALTER INDEX public.{ix.temp} RENAME TO "{ix.name}"')
    for name, definition in plan.foreign_keys:
        cur.execute(f'ALTER TABLE public.{t} ADD CONSTRAINT "{name}" {definition}')


def discard(connect, plan: Plan) -> None:
    """Drop the new table (after an error); never raises."""
    try:
        conn = connect()
        try:
            conn.cursor().execute(f"DROP TABLE IF EXISTS public.{plan.table}")
            conn.commit()
        finally:
            conn.close()
    except Exception:  # drop_stale removes it on the next bulk load
        pass


def release(cur, plan: Plan) -> None:
    """Give up the plan's advisory lock (its session is going back to the pool)."""
    cur.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, plan.run_id))
