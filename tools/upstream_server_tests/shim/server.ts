// Our `tidebase serve` subprocesses, one per distinct configuration (the TIDEBASE_* environment
// at createApp() time plus its apiKey option), started lazily and stopped with this worker.
// Not upstream code: the harness's stand-in for an in-process Hono app.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

const HARNESS_SERVER = fileURLToPath(new URL('../harness_server.py', import.meta.url))

export type ServerHandle = { base: string; apiKey: string | undefined }

const started = new Map<string, Promise<ServerHandle>>()
const children = new Set<ChildProcess>()
let latest: Promise<ServerHandle> | undefined

process.on('exit', () => {
  for (const child of children) child.kill('SIGTERM')
})

function required(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set: run these tests through run.py (nox -s upstream-server)`)
  return value
}

/** The TIDEBASE_* settings the test sees now (the harness's own variables excluded). */
function configNow(apiKey: string | undefined): Record<string, string> {
  const config: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('TIDEBASE_') || value === undefined) continue
    if (name.startsWith('TIDEBASE_HARNESS_') || name === 'TIDEBASE_TEST_DATABASE_URL') continue
    config[name] = value
  }
  // Upstream: `options.apiKey ?? process.env.TIDEBASE_API_KEY`.
  const key = apiKey ?? process.env.TIDEBASE_API_KEY
  if (key === undefined) delete config.TIDEBASE_API_KEY
  else config.TIDEBASE_API_KEY = key
  return config
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const port = (probe.address() as { port: number }).port
      probe.close(() => resolve(port))
    })
  })
}

async function start(config: Record<string, string>): Promise<ServerHandle> {
  const port = await freePort()
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith('TIDEBASE_')) env[name] = value
  }
  Object.assign(env, config, {
    TIDEBASE_DATABASE_URL: required('TIDEBASE_HARNESS_DATABASE_URL'),
    TIDEBASE_SCHEMA: required('TIDEBASE_HARNESS_SCHEMA'),
    // Upstream's createApp() has no background reconciler: tests tick it themselves.
    TIDEBASE_RECONCILER: '0'
  })
  const child = spawn(required('TIDEBASE_HARNESS_PYTHON'), [HARNESS_SERVER, String(port)], {
    env,
    stdio: ['pipe', 'ignore', 'pipe']
  })
  children.add(child)
  let stderr = ''
  child.stderr!.on('data', (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  let exited: number | null | undefined
  child.on('exit', (code) => {
    exited = code
    children.delete(child)
  })
  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`tidebase serve exited (${exited}):\n${stderr}`)
    try {
      if ((await fetch(`${base}/health`)).ok) return { base, apiKey: config.TIDEBASE_API_KEY }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`tidebase serve did not answer /health within 60 s:\n${stderr}`)
}

/** The server for the environment of this moment (and `apiKey`), started on first use. */
export function serverFor(apiKey: string | undefined): () => Promise<ServerHandle> {
  const config = configNow(apiKey)
  const key = JSON.stringify(Object.entries(config).sort())
  let handle: Promise<ServerHandle> | undefined
  return () => {
    if (handle === undefined) {
      handle = started.get(key)
      if (handle === undefined) {
        handle = start(config)
        started.set(key, handle)
      }
      latest = handle
    }
    return handle
  }
}

/** The server of the app this worker used last (a default one when there is none yet). */
export function anyServer(): Promise<ServerHandle> {
  return latest ?? serverFor(undefined)()
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding']

/** `request` sent over real HTTP to the server; the answer streams back (SSE included). */
export async function forward(handle: ServerHandle, request: Request): Promise<Response> {
  const url = new URL(request.url)
  const headers = new Headers(request.headers)
  headers.delete('host')
  const bodyless = request.method === 'GET' || request.method === 'HEAD'
  const answer = await fetch(`${handle.base}${url.pathname}${url.search}`, {
    method: request.method,
    headers,
    body: bodyless ? undefined : await request.arrayBuffer(),
    redirect: 'manual'
  })
  const out = new Headers(answer.headers)
  for (const name of HOP_BY_HOP) out.delete(name)
  return new Response(answer.body, { status: answer.status, statusText: answer.statusText, headers: out })
}
