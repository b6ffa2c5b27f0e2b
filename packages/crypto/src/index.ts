export { concatBytes, equalBytes, compareBytes, randomBytes, sha256, toBase64Url, fromBase64Url, utf8 } from './bytes'
export {
  type DeviceKey,
  type SignatureVerifier,
  WebCryptoDeviceKey,
  generateDeviceKey,
  hasWebCryptoEd25519,
  webCryptoVerifier,
  isAcceptablePublicKey,
  passesEd25519Prechecks,
} from './ed25519'
// The pure JavaScript Ed25519 (NobleDeviceKey, nobleVerifier, verifyPortable)
// is its own entry, @kai-sync/crypto/noble: re-exported here it would put
// noble in every page that imports this index (a bundler splitting code
// keeps what a barrel re-exports with the barrel), where a browser with
// WebCrypto needs none of it.
export { defaultVerifier } from './default-verifier'
export { nodeVerifier } from './node-verifier'
export { SessionKey, SessionKeyring, IV_BYTES } from './session-key'
export {
  type Envelope,
  type EnvelopeHeader,
  type EnvelopeKind,
  type StreamCursor,
  ENVELOPE_KINDS,
  ENVELOPE_VERSION,
  KEY_BYTES,
  STREAM_BYTES,
  HASH_BYTES,
  ZERO_HASH,
  encodeHeader,
  sealEnvelope,
  decodeEnvelope,
  verifyEnvelope,
  openEnvelope,
} from './envelope'
export { newStreamId, deriveClientId, deriveSessionId, SESSION_NONCE_BYTES } from './ids'
export {
  type Role,
  type RosterEntry,
  type RosterEntryFields,
  type StreamPosition,
  ROLES,
  INVITE_ROLES,
  NO_BOX,
  signRosterEntry,
  createGenesis,
  isGenesis,
  isRosterEntryBytes,
  decodeRosterEntry,
  verifyRosterEntry,
} from './roster-entry'
export { BoxKey, grantKey, decodeKeyGrant, verifyKeyGrant, openKeyGrant, isKeyGrantBytes, type KeyGrant } from './box-key'
// The handoff token (signHandoffToken, decodeHandoffToken,
// verifyHandoffToken, handoffTokenId, signHandoffClaim, verifyHandoffClaim,
// HandoffToken, HandoffTokenFields) is its own entry,
// @kai-sync/crypto/handoff-token, for the same reason as noble's: only a
// handoff needs it. Its lifetime is read everywhere (the engine's invites).
export { HANDOFF_TTL_MS } from './handoff-ttl'
// The relay capability (signCapability, capabilityToParam, decodeCapability,
// verifyCapability, Capability, CAPABILITY_PARAM, CAPABILITY_NONCE_BYTES,
// DEFAULT_CAPABILITY_TTL_MS) is its own entry too, @kai-sync/crypto/capability:
// a page needs it only once it connects to a relay.
