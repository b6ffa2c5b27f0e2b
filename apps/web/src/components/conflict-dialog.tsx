import type { ConflictInfo, Json } from '@kai-sync/model'
import { ConflictValues } from './conflict-values'
import { Modal } from './modal'

/**
 * Asks which of concurrent values to keep, for fields whose policy is
 * `user_choice`. The choice is written as a new value, which supersedes
 * every value it saw: on every device, the conflict is then resolved.
 */
export function ConflictDialog({ conflicts, onChoose, onLater, deviceName }: { conflicts: ConflictInfo[]; onChoose: (field: string, value: Json) => void; onLater: () => void; deviceName: (id: string) => string }) {
  const conflict = conflicts[0]
  if (!conflict) return null
  const field = conflict.field.replace(/^config\./, '')
  return (
    <Modal key={conflict.field} labelledBy="conflict-title" testId="conflict-dialog" data-field={conflict.field} onClose={onLater}>
      <h2 id="conflict-title">Which {field} should this session keep?</h2>
      <p>It was changed in two places at once.{conflicts.length > 1 && ` ${conflicts.length - 1} more after this one.`}</p>
      <ConflictValues conflict={conflict} label={field} onKeep={(value) => onChoose(conflict.field, value)} deviceName={deviceName} />
      <button type="button" class="quiet" onClick={onLater}>
        Decide later
      </button>
    </Modal>
  )
}
