import OpenAI from 'openai'
import { KaiError, type AgentConfig, type Message } from '@kai-sync/model'
import type { SourceFactory } from '@kai-sync/agent'

// The agent's model: any OpenAI-compatible chat-completions endpoint,
// through the `openai` package (its own SSE parsing, errors and aborts).

export interface ModelEndpoint {
  /** OPENAI_BASE_URL; the package's default (api.openai.com) if unset. */
  baseURL?: string
  /** OPENAI_API_KEY; local servers (Ollama, llama.cpp) take any. */
  apiKey?: string
}

type ChatMessage = { role: 'system' | 'user' | 'assistant'; content: string }

/** What the model is sent: the system prompt, then the history in view order (replies that failed or never finished left out). */
export function chatMessages(history: readonly Message[], config: AgentConfig): ChatMessage[] {
  const out: ChatMessage[] = []
  if (config.system_prompt) out.push({ role: 'system', content: config.system_prompt })
  for (const m of history) {
    if (m.role === 'tool' || m.content === '') continue
    if (m.status === 'streaming' || m.status === 'error' || m.status === 'interrupted') continue
    out.push({ role: m.role, content: m.content })
  }
  return out
}

export function openAiClient(endpoint: ModelEndpoint): OpenAI {
  // No retries: a rate limit or an outage shows on the reply at once, and
  // anyone can ask for another try; the SDK would otherwise wait silently.
  return new OpenAI({ apiKey: endpoint.apiKey || 'not-needed', ...(endpoint.baseURL ? { baseURL: endpoint.baseURL } : {}), maxRetries: 0 })
}

/** A turn's source: streams one chat completion, aborted with the turn's signal. */
export function openAiSource(client: OpenAI, model: string, config: AgentConfig, messages: ChatMessage[]): SourceFactory {
  return async function* ({ signal, reportUsage }) {
    const tools = (config.tools ?? []).map((name) => ({ type: 'function' as const, function: { name, parameters: { type: 'object', properties: {} } } }))
    const stream = await client.chat.completions.create(
      {
        model,
        messages,
        temperature: config.temperature,
        ...(config.max_tokens !== undefined ? { max_tokens: config.max_tokens } : {}),
        ...(tools.length > 0 ? { tools } : {}),
        stream: true,
        stream_options: { include_usage: true },
      },
      { signal },
    )
    let finish: string | null = null
    let received = 0
    try {
      for await (const chunk of stream) {
        if (chunk.usage) reportUsage({ input: chunk.usage.prompt_tokens, output: chunk.usage.completion_tokens })
        const choice = chunk.choices[0]
        if (!choice) continue
        if (choice.finish_reason) finish = choice.finish_reason
        const call = choice.delta?.tool_calls?.[0]?.function?.name
        if (call) throw new KaiError('model_error', `the model asked to run the tool ${call.slice(0, 60)}; this agent runs no tools yet`)
        const text = choice.delta?.content
        if (text) {
          received++
          yield text
        }
      }
    } catch (e) {
      if (e instanceof KaiError || signal.aborted) throw e
      // Cut after it started answering: the reply is unfinished, not refused.
      throw new KaiError('model_stream_cut', `the model's stream broke off after ${received} chunks (${(e as Error).message?.slice(0, 80)})`, { cause: e })
    }
    if (finish === null && !signal.aborted) throw new KaiError('model_stream_cut', `the model's stream ended after ${received} chunks without saying it was finished`)
  }
}
