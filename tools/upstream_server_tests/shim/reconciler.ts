// Stands in for upstream's `../src/reconciler`: one tick of our reconciler, through the route
// only the harness's server has (harness_server.py). Null when another tick held the lock.
import { anyServer } from './server'

export type TickReport = {
  requeued: number
  failed: number
  recovered: number
  cancelledByDeadline: number
  scheduled: number
  invoked: number
  grantsExpired: number
}

export async function reconcileTick(): Promise<TickReport | null> {
  const handle = await anyServer()
  const headers: Record<string, string> = {}
  if (handle.apiKey !== undefined) headers.authorization = `Bearer ${handle.apiKey}`
  const answer = await fetch(`${handle.base}/__harness/reconcile-tick`, { method: 'POST', headers })
  if (!answer.ok) throw new Error(`reconcile tick: ${answer.status} ${await answer.text()}`)
  return (await answer.json()) as TickReport | null
}

export function startReconciler(): never {
  throw new Error('harness: the reconciler is ticked by the tests (reconcileTick), never started')
}
