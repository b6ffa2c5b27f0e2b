import WS from 'ws'

// Node 20 has no global WebSocket (Node 22 does): use it when present, else `ws`.
export const DefaultWebSocket = (globalThis.WebSocket ?? WS) as unknown as typeof WebSocket
