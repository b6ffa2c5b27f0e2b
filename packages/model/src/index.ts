export { KaiError, ERROR_CODES, HTTP_STATUS, isKaiError, toKaiError, type ErrorCode } from './errors'
export * from './schemas'
export { HybridClock, encodeHlc, decodeHlc, compareHlc, type HlcTimestamp } from './hlc'
export { OrderedIndex } from './ordered-index'
export { ConfigRegister, isValidConfigValue, type ConfigWrite } from './config-register'
export {
  SessionDoc,
  LOCAL_ORIGIN,
  type SessionMeta,
  type SessionChange,
  type SessionDocEvents,
  type SessionDocOptions,
  type NewMessage,
} from './session-doc'
export {
  toRecord,
  toState,
  importRecord,
  agentConfig,
  latestWriteWins,
  type ConfigResolver,
  type ConfigView,
} from './record'
