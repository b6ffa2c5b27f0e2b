import * as prng from 'lib0/prng'

/**
 * A seeded generator, and the line to print when a run fails so that it
 * can be replayed: `KAI_FUZZ_SEED=<seed> pnpm test:fuzz`.
 */
export function seededRandom(seed: number): { gen: prng.PRNG; replay: string } {
  return { gen: prng.create(seed), replay: `replay with KAI_FUZZ_SEED=${seed}` }
}
