// How long a handoff token (and the invite key it names) is good for. Its
// own module: the engine's roster reads it in every page's first load,
// while the token's code (handoff-token.ts) loads only with a handoff.
export const HANDOFF_TTL_MS = 5 * 60 * 1000
