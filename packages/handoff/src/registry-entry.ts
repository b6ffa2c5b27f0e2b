// `@kai-sync/handoff/registry`: the relay's side of a handoff. The relay
// imports this and not the client entry (initiate, accept, the link);
// clients never ship it.
export { HandoffRegistry, MemoryHandoffStore, type HandoffRecord, type HandoffStore, type HandoffRegistryOptions } from './registry'
export {
  RegisterHandoffBodySchema,
  ResumeBodySchema,
  ResumeResponseSchema,
  type RegisterHandoffBody,
  type ResumeBody,
  type ResumeResponse,
} from './protocol'
