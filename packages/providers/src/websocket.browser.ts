// Browsers (and extension pages) have WebSocket; a bundle for them never includes `ws`.
export const DefaultWebSocket: typeof WebSocket = globalThis.WebSocket
