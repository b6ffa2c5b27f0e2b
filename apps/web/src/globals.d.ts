// Set by the build (esbuild `define`), see build/build.ts.
declare const KAI_TARGET: 'pwa' | 'extension'
