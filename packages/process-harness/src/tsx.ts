import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const require = createRequire(import.meta.url)

/**
 * Node arguments that run a .ts file in this very process (tsx as a
 * loader). The tsx CLI would run it in a grandchild, which a kill of the
 * child leaves running: a kill -9 must reach the process holding a store.
 */
export const RUN_TS = ['--import', pathToFileURL(require.resolve('tsx')).href]
