// Stands in for upstream's `../src/cron`: our parser (tidebase_core.queue_models, on cronsim),
// called synchronously as upstream's functions are. Our messages are mapped onto upstream's
// error categories by what they say: a wrong field count, a zero step, else a bad value.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../harness_cron.py', import.meta.url))

function ours(args: string[]): string {
  const python = process.env.TIDEBASE_HARNESS_PYTHON
  if (!python) throw new Error('run these tests through run.py (nox -s upstream-server)')
  const done = spawnSync(python, [CLI, ...args], { encoding: 'utf8' })
  if (done.status === 0) return done.stdout.trim()
  const message = done.stderr.trim()
  if (/has \d+ fields/.test(message)) throw new Error(`expected 5 fields: ${message}`)
  if (/has a step of 0/.test(message)) throw new Error(`invalid cron step: ${message}`)
  throw new Error(`invalid cron value: ${message}`)
}

export function parseCron(expression: string): string {
  ours(['parse', expression])
  return expression
}

export function nextFire(expression: string, from: Date): Date {
  return new Date(ours(['next', expression, from.toISOString()]))
}
