// Runs upstream's server tests, unchanged (run.py copies them into .work/), against our
// `tidebase serve`: their imports of the server's modules resolve to our shims.
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  resolve: {
    alias: [
      { find: /^\.\.\/src\/(app|reconciler|db|cron)(\.js)?$/, replacement: here('./shim/$1.ts') },
      // The official TypeScript SDK is not published on the npm registry: its source from the
      // upstream checkout (as upstream's own workspace:* dependency).
      { find: /^@tidebase\/sdk$/, replacement: here('./.work/sdk/src/index.ts') }
    ]
  },
  test: {
    root: here('.'),
    include: ['.work/test/*.test.ts'],
    pool: 'forks',
    // As upstream's vitest.config.ts.
    testTimeout: 20_000,
    hookTimeout: 20_000,
    env: {
      TIDEBASE_WEBHOOK_SECRET: 'test-webhook-secret'
    }
  }
})
