"""Statements of the Tidebase v0.7 HTTP protocol (``tidebase serve``) that the engine itself
does not need. Same conventions as ``queries.py``: ``{s}`` is the schema, ``{c}`` the
LISTEN/NOTIFY channel prefix; values always travel as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from .queries import fill_schema

__all__ = ["ProtocolQueries"]

# A run as the protocol shows it: the columns of RunInfo plus the lease owner, the cancel reason
# and who cancelled it (the actor lives in the run.cancelled event's payload).
_RUN_ROW = """
r.run_id, r.workflow_name, r.status, r.input, r.result, r.error, r.attempt, r.failure_class,
r.metadata, r.created_at, r.updated_at, r.completed_at, r.lease_expires_at, r.owner_token,
r.cancel_reason,
CASE WHEN r.status = 'cancelled' THEN (
    SELECT e.payload ->> 'actor' FROM {s}.events e
    WHERE e.run_id = r.run_id AND e.type = 'run.cancelled'
    ORDER BY e.seq DESC LIMIT 1
) END AS cancel_actor
"""

# A run created over HTTP (POST /runs/{workflowName}): 'pending', no worker yet, its log opened
# by run.created at seq 1. A worker (in-process tide.run or the protocol's runs/begin) claims it
# like any other run of that workflow.
CREATE_RUN = """
WITH r AS (
    INSERT INTO {s}.runs AS r (run_id, workflow_name, status, input, input_hash, metadata,
                                 attempt, last_seq)
    VALUES (%(run_id)s, %(workflow)s, 'pending', %(input)s, %(input_hash)s, %(metadata)s, 0, 1)
    ON CONFLICT (run_id) DO NOTHING
    RETURNING r.run_id
), ev AS (
    INSERT INTO {s}.events (run_id, seq, type, payload)
    SELECT r.run_id, 1, 'run.created', %(payload)s FROM r
)
SELECT run_id FROM r
"""

GET_RUN_ROW = f"SELECT {_RUN_ROW} FROM {{s}}.runs r WHERE r.run_id = %(run_id)s"

LIST_RUN_ROWS = f"""
SELECT {_RUN_ROW} FROM {{s}}.runs r
ORDER BY r.created_at DESC, r.run_id
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class ProtocolQueries:
    create_run: str = CREATE_RUN
    get_run_row: str = GET_RUN_ROW
    list_run_rows: str = LIST_RUN_ROWS

    @classmethod
    def for_schema(cls, schema: str) -> ProtocolQueries:
        return fill_schema(cls, schema)
