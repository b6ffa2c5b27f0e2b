export {
  streamReply,
  AGENT_TURN_ACTION,
  type ReplySession,
  type ReplyResult,
  type SourceFactory,
  type StreamReplyOptions,
  type TextSource,
  type TextStreamResult,
  type TokenUsage,
  type TurnContext,
  type TurnOutcome,
} from './stream-reply'
export { modelErrorOf } from './model-errors'
export { AGENT_PRESENT_ACTION, agentsIn, announceAgent, type AgentPresence } from './agent-presence'
