#!/usr/bin/env node
// Runs the relay's TypeScript entry point in this process, with tsx
// registered as a loader (packages ship their sources), so signals such as
// SIGTERM reach the relay itself.
import { register } from 'tsx/esm/api'

register()
await import('../src/cli.ts')
