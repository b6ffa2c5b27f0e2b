export { initiateHandoff, instructionsFor, qrForTerminal, type InitiateOptions, type InitiatedHandoff } from './initiate'
export { acceptHandoff, type AcceptOptions, type AcceptedHandoff, type Transport } from './accept'
export { checkResumeLink, encodeResumeLink, parseResumeLink, resumeLinkBytes, type ResumeLinkPayload } from './link'
export {
  RegisterHandoffBodySchema,
  ResumeBodySchema,
  ResumeResponseSchema,
  type RegisterHandoffBody,
  type ResumeBody,
  type ResumeResponse,
} from './protocol'
export { httpHandoffRelay, localHandoffRelay, relayHttpBase, type HandoffRelay } from './relay-client'
