import { useState } from 'preact/hooks'
import { isValidConfigValue, type ConflictInfo, type ConflictPolicy, type Json, type PolicyTarget } from '@kai-sync/model'
import type { ShownConfig } from '../config-view'
import { ConflictValues } from './conflict-values'

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

export const POLICIES: { value: ConflictPolicy; label: string }[] = [
  { value: 'timestamp', label: 'Latest wins' },
  { value: 'merge', label: 'Merge' },
  { value: 'manual', label: 'Manual' },
  { value: 'user_choice', label: 'Ask me' },
]
const POLICY_LABEL = Object.fromEntries(POLICIES.map((p) => [p.value, p.label])) as Record<ConflictPolicy, string>

export interface ConfigEditorProps {
  view: ShownConfig
  readOnly: boolean
  onSet: (field: string, value: Json) => void
  onPolicy: (target: PolicyTarget, policy: ConflictPolicy | null) => void
  /** Keeps one value of a conflict. */
  onKeep: (field: string, value: Json) => void
  /** A device id as a person knows it. */
  deviceName: (id: string) => string
}

/**
 * The agent's configuration, editable; every field commits on blur or
 * Enter. While a field is being edited, values arriving from elsewhere do
 * not overwrite what is being typed. Each field shows the policy that
 * decides between concurrent writes, and a field in conflict shows every
 * value with where it came from.
 */
export function ConfigEditor({ view, readOnly, onSet, onPolicy, onKeep, deviceName }: ConfigEditorProps) {
  const conflicts = new Map(view.conflicts.map((c) => [c.field, c]))
  return (
    <form class="config" data-testid="config" onSubmit={(e) => e.preventDefault()}>
      <label class="field policy-default" for="policy-default">
        <span class="field-label">When two devices change a setting at once</span>
        <select id="policy-default" data-testid="policy-default" value={view.fallback} disabled={readOnly} onChange={(e) => onPolicy('default', e.currentTarget.value as ConflictPolicy)}>
          {POLICIES.map((p) => (
            <option key={p.value} value={p.value}>
              {p.label}
            </option>
          ))}
        </select>
      </label>
      {FIELDS.map((spec) => (
        <div class="setting" key={spec.name} data-testid={`setting-${spec.name}`} data-policy={view.own[spec.name] ?? view.fallback}>
          <ConfigField spec={spec} value={view.config[spec.name]} readOnly={readOnly} onSet={onSet} />
          <PolicyPicker spec={spec} own={view.own[spec.name] ?? null} fallback={view.fallback} readOnly={readOnly} onPolicy={onPolicy} />
          {conflicts.has(`config.${spec.name}`) && (
            <FieldConflict conflict={conflicts.get(`config.${spec.name}`)!} label={spec.label} readOnly={readOnly} onKeep={onKeep} deviceName={deviceName} />
          )}
        </div>
      ))}
    </form>
  )
}

function PolicyPicker({ spec, own, fallback, readOnly, onPolicy }: { spec: FieldSpec; own: ConflictPolicy | null; fallback: ConflictPolicy; readOnly: boolean; onPolicy: ConfigEditorProps['onPolicy'] }) {
  const id = `policy-${spec.name}`
  return (
    <span class="policy">
      <label for={id}>If changed in two places</label>
      <select
        id={id}
        data-testid={id}
        aria-label={`${spec.label}: policy`}
        value={own ?? ''}
        disabled={readOnly}
        onChange={(e) => onPolicy(`config.${spec.name}`, (e.currentTarget.value || null) as ConflictPolicy | null)}
      >
        <option value="">Session default ({POLICY_LABEL[fallback]})</option>
        {POLICIES.map((p) => (
          <option key={p.value} value={p.value}>
            {p.label}
          </option>
        ))}
      </select>
    </span>
  )
}

/** A conflict on one field, shown where the field is: every value, its device and mode, and a way to keep one. */
function FieldConflict({ conflict, label, readOnly, onKeep, deviceName }: { conflict: ConflictInfo; label: string; readOnly: boolean; onKeep: ConfigEditorProps['onKeep']; deviceName: (id: string) => string }) {
  return (
    <div class="field-conflict" role="group" aria-label={`${label}: values in conflict`} data-testid="field-conflict" data-field={conflict.field}>
      <p>Changed in {conflict.values.length} places at once. Keep one:</p>
      <ConflictValues conflict={conflict} label={label} disabled={readOnly} onKeep={(value) => onKeep(conflict.field, value)} deviceName={deviceName} />
    </div>
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
