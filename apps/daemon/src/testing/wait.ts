/** Reads until `done` holds; throws with the last value read after `timeoutMs`. */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > until) throw new Error(`timed out waiting until ${what}; last: ${JSON.stringify(value).slice(0, 2000)}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
