import { useState } from 'preact/hooks'
import { isValidConfigValue, type AgentConfig, type Json } from '@kai-sync/model'

interface FieldSpec {
  name: string
  label: string
  kind: 'text' | 'number' | 'textarea' | 'list'
  hint?: string
  step?: number
}

const FIELDS: FieldSpec[] = [
  { name: 'model', label: 'Model', kind: 'text' },
  { name: 'temperature', label: 'Temperature', kind: 'number', step: 0.1, hint: '0 to 2' },
  { name: 'max_tokens', label: 'Max tokens', kind: 'number', step: 1, hint: 'empty for the model default' },
  { name: 'system_prompt', label: 'System prompt', kind: 'textarea' },
  { name: 'tools', label: 'Tools', kind: 'list', hint: 'comma-separated' },
]

function format(spec: FieldSpec, value: Json | undefined): string {
  if (value === undefined || value === null) return ''
  if (spec.kind === 'list' && Array.isArray(value)) return value.join(', ')
  return String(value)
}

function parse(spec: FieldSpec, text: string): Json | undefined {
  const t = text.trim()
  if (spec.kind === 'number') return t === '' ? undefined : Number(t)
  if (spec.kind === 'list') return t === '' ? [] : t.split(',').map((s) => s.trim()).filter(Boolean)
  return spec.kind === 'textarea' ? text : t
}

/**
 * The agent's configuration, editable; every field commits on blur or
 * Enter. While a field is being edited, values arriving from elsewhere do
 * not overwrite what is being typed.
 */
export function ConfigEditor({ config, readOnly, onSet }: { config: AgentConfig; readOnly: boolean; onSet: (field: string, value: Json) => void }) {
  return (
    <form class="config" data-testid="config" onSubmit={(e) => e.preventDefault()}>
      {FIELDS.map((spec) => (
        <ConfigField key={spec.name} spec={spec} value={config[spec.name]} readOnly={readOnly} onSet={onSet} />
      ))}
    </form>
  )
}

function ConfigField({ spec, value, readOnly, onSet }: { spec: FieldSpec; value: Json | undefined; readOnly: boolean; onSet: (field: string, value: Json) => void }) {
  const [editing, setEditing] = useState<string | null>(null)
  const [error, setError] = useState<string | null>(null)
  const commit = () => {
    if (editing === null) return
    const next = parse(spec, editing)
    setEditing(null)
    if (next === undefined || JSON.stringify(next) === JSON.stringify(value ?? null)) return
    if (!isValidConfigValue(spec.name, next)) {
      setError(`Not a valid ${spec.label.toLowerCase()}${spec.hint ? ` (${spec.hint})` : ''}`)
      return
    }
    setError(null)
    onSet(spec.name, next)
  }
  const common = {
    id: `config-${spec.name}`,
    name: spec.name,
    'data-testid': `config-${spec.name}`,
    value: editing ?? format(spec, value),
    disabled: readOnly,
    onInput: (e: Event) => setEditing((e.currentTarget as HTMLInputElement).value),
    onBlur: commit,
  }
  return (
    <label class="field" for={common.id}>
      <span class="field-label">
        {spec.label}
        {spec.hint && <small>{spec.hint}</small>}
      </span>
      {spec.kind === 'textarea' ? (
        <textarea rows={3} {...common} />
      ) : spec.kind === 'number' ? (
        <input {...common} type="number" step={spec.step} onKeyDown={(e) => e.key === 'Enter' && commit()} />
      ) : (
        <input {...common} type="text" onKeyDown={(e) => e.key === 'Enter' && commit()} />
      )}
      {error && <span class="field-error">{error}</span>}
    </label>
  )
}
