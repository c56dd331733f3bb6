// Stands in for upstream's `../src/app`: createApp() returns an object with Hono's `fetch` and
// `request`, both answered by our `tidebase serve` over real HTTP.
import { forward, serverFor } from './server'

export type CreateAppOptions = { apiKey?: string }

export function createApp(options: CreateAppOptions = {}) {
  const server = serverFor(options.apiKey)
  const fetch = async (request: Request): Promise<Response> => forward(await server(), request)
  return {
    fetch,
    request(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
      if (input instanceof Request) return fetch(init ? new Request(input, init) : input)
      const text = input.toString()
      // Hono's app.request takes a path and makes it http://localhost/<path>.
      const url = /^https?:\/\//.test(text) ? text : `http://localhost${text.startsWith('/') ? '' : '/'}${text}`
      return fetch(new Request(url, init))
    }
  }
}
