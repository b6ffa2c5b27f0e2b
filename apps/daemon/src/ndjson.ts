import type { IncomingMessage } from 'node:http'
import type { z } from 'zod'
import { KaiError, parseInput } from '@kai-sync/model'

// A request body of newline-delimited JSON (application/x-ndjson), read
// line by line as it arrives, so a program can stream a whole reply in one
// request. Each line is parsed with the route's schema when it is complete;
// a bad line throws with its number, after the lines before it were handed
// out (and applied: they may be on other devices already).

export const NDJSON_TYPE = 'application/x-ndjson'

export function isNdjson(req: IncomingMessage): boolean {
  return new RegExp(`^${NDJSON_TYPE.replace('/', '\\/')}\\b`, 'i').test(req.headers['content-type'] ?? '')
}

export interface NdjsonBody<T> extends AsyncIterable<T> {
  /** Lines handed out so far. */
  readonly lines: number
  /** True if the client went away before the body ended. */
  readonly cut: boolean
}

/** The body's lines, each parsed with `schema`; a line over `lineLimit` bytes is `too_large`. */
export function ndjsonLines<S extends z.core.$ZodType>(req: IncomingMessage, schema: S, lineLimit: number): NdjsonBody<z.output<S>> {
  const state = { lines: 0, cut: false }
  async function* read(): AsyncGenerator<z.output<S>> {
    let buffer: Buffer = Buffer.alloc(0)
    let number = 0
    const parse = (bytes: Buffer): z.output<S> | undefined => {
      number++
      const text = bytes.toString('utf8').trim()
      if (text === '') return undefined
      const applied = `; the ${state.lines} line${state.lines === 1 ? '' : 's'} before it ${state.lines === 1 ? 'was' : 'were'} applied`
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        throw new KaiError('malformed', `line ${number} of the body is not valid JSON${applied}`)
      }
      try {
        return parseInput(schema, json, `line ${number}`)
      } catch (e) {
        const error = e as KaiError
        throw new KaiError(error.code, `${error.message}${applied}`)
      }
    }
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk
        let end
        while ((end = buffer.indexOf(0x0a)) >= 0) {
          const line = parse(buffer.subarray(0, end))
          buffer = buffer.subarray(end + 1)
          if (line === undefined) continue
          state.lines++
          yield line
        }
        if (buffer.length > lineLimit) {
          req.resume()
          throw new KaiError('too_large', `line ${number + 1} of the body is over the ${lineLimit}-byte limit`)
        }
      }
    } catch (e) {
      if (e instanceof KaiError) throw e
      // The client went away mid-body: what it sent so far stands.
      state.cut = true
      return
    }
    const last = parse(buffer)
    if (last !== undefined) {
      state.lines++
      yield last
    }
  }
  const lines = read()
  return {
    [Symbol.asyncIterator]: () => lines,
    get lines() {
      return state.lines
    },
    get cut() {
      return state.cut
    },
  }
}
