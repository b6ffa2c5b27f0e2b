import { parseArgs, type ParseArgsConfig } from 'node:util'

type Options = NonNullable<ParseArgsConfig['options']>

/**
 * parseArgs with positionals, where a word that starts with a single dash
 * and is not one of the command's options is a positional: session ids and
 * keys are base64url, so one in 64 starts with '-', and one in 4,096 with
 * '--': an unknown `--word` shaped like an id or key (22 or 43 base64url
 * characters, longer than any option name) is a positional too. Other unknown
 * `--long` options are still refused.
 */
export function parseCommandArgs<T extends Options>(argv: string[], options: T) {
  const flags: string[] = []
  const positionals: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    const option = optionOf(arg, options)
    if (option === null || (option === undefined && ID_OR_KEY.test(arg))) {
      positionals.push(arg)
      continue
    }
    flags.push(arg)
    if (option?.type === 'string' && !arg.includes('=') && i + 1 < argv.length) flags.push(argv[++i]!)
  }
  return parseArgs({ args: [...flags, '--', ...positionals], options, allowPositionals: true, strict: true })
}

/** A 16-byte id or a 32-byte key in unpadded base64url. */
const ID_OR_KEY = /^(?:[A-Za-z0-9_-]{22}|[A-Za-z0-9_-]{43})$/

/** The option `arg` names; undefined for an unknown `--long` (parseArgs refuses it); null for no option at all. */
function optionOf(arg: string, options: Options): Options[string] | undefined | null {
  if (arg.startsWith('--')) return options[arg.slice(2).split('=')[0]!]
  if (arg.length === 2 && arg.startsWith('-')) return Object.values(options).find((o) => o.short === arg[1]) ?? null
  return null
}
