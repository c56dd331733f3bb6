// Stands in for upstream's `../src/db`: `pool.query` runs the few statements upstream's tests
// send, each translated onto our schema (our tables name some columns differently). An
// unknown statement fails loudly, so a new upstream test cannot silently test nothing.
import pg from 'pg'

const TRANSLATIONS: Record<string, string> = {
  // runs: our key column is run_id.
  'update runs set run_at = now() where id = $1': 'update runs set run_at = now() where run_id = $1',
  "update runs set lease_expires_at = now() - interval '1 second' where id = $1":
    "update runs set lease_expires_at = now() - interval '1 second' where run_id = $1",
  "select * from runs where queue_name = $1 and workflow_name = 'scheduled-wf'":
    "select *, run_id as id from runs where queue_name = $1 and workflow_name = 'scheduled-wf'",
  // schedules: upstream's next_run_at is our next_fire_at.
  "update schedules set next_run_at = now() - interval '1 minute' where name = $1":
    "update schedules set next_fire_at = now() - interval '1 minute' where name = $1",
  // recovery_attempts: ours is webhook_attempts, one row per delivery attempt of a recovery
  // (run.resume) or push (run.invoke) webhook; upstream's reason for a push is queue_dispatch.
  'select * from recovery_attempts where run_id = $1':
    "select *, case kind when 'run.invoke' then 'queue_dispatch' else kind end as reason " +
    'from webhook_attempts where run_id = $1',
  'select count(*)::int as n from recovery_attempts where run_id = $1':
    'select count(*)::int as n from webhook_attempts where run_id = $1'
}

let real: pg.Pool | undefined

function connect(): pg.Pool {
  const url = process.env.TIDEBASE_HARNESS_DATABASE_URL
  const schema = process.env.TIDEBASE_HARNESS_SCHEMA
  if (!url || !schema) throw new Error('run these tests through run.py (nox -s upstream-server)')
  real = new pg.Pool({ connectionString: url, options: `-c search_path=${schema}`, max: 2 })
  return real
}

export const pool = {
  async query(text: string, params?: unknown[]) {
    const ours = TRANSLATIONS[text.replace(/\s+/g, ' ').trim()]
    if (ours === undefined) {
      throw new Error(`harness: no translation onto our schema for upstream's SQL: ${text}`)
    }
    return (real ?? connect()).query(ours, params)
  },
  async end() {
    await real?.end()
    real = undefined
  }
}

export async function tx(): Promise<never> {
  throw new Error('harness: tx() is not translated (no upstream server test uses it)')
}
