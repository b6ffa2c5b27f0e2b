import { buildWeb } from '../build/build'

// The end-to-end tests run against dist/, built fresh once per test run.
export default async function setup(): Promise<void> {
  await buildWeb()
}
