export { initiateHandoff, instructionsFor, qrForTerminal, type InitiateOptions, type InitiatedHandoff } from './initiate'
export { acceptHandoff, type AcceptOptions, type AcceptedHandoff, type Transport } from './accept'
export { checkResumeLink, encodeResumeLink, parseResumeLink, resumeLinkBytes, type ResumeLinkPayload } from './link'
export {
  HandoffRegistry,
  MemoryHandoffStore,
  RegisterHandoffBodySchema,
  ResumeBodySchema,
  ResumeResponseSchema,
  type HandoffRecord,
  type HandoffStore,
  type HandoffRegistryOptions,
  type RegisterHandoffBody,
  type ResumeBody,
  type ResumeResponse,
} from './registry'
export { httpHandoffRelay, localHandoffRelay, relayHttpBase, type HandoffRelay } from './relay-client'
