import { deflateSync } from 'node:zlib'

// The app icon, drawn in code so the repo holds no binaries and every size
// is sharp: two interlocking rings (two places, one session) on a rounded
// square. Written as PNG with node:zlib; PNG is what the manifests need.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length)
  out.writeUInt32BE(data.length, 0)
  out.write(type, 4, 'latin1')
  out.set(data, 8)
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length)
  return out
}

export function encodePng(width: number, height: number, rgba: Uint8Array): Buffer {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header.set([8, 6, 0, 0, 0], 8) // 8-bit RGBA, no interlace
  const rows = Buffer.alloc((width * 4 + 1) * height)
  for (let y = 0; y < height; y++) rows.set(rgba.subarray(y * width * 4, (y + 1) * width * 4), y * (width * 4 + 1) + 1)
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', new Uint8Array()),
  ])
}

/** Coverage of a pixel by a shape given as a signed distance (negative inside), antialiased. */
const cover = (d: number, px: number) => Math.max(0, Math.min(1, 0.5 - d / px))

export function drawIcon(size: number, options: { maskable?: boolean } = {}): Buffer {
  const rgba = new Uint8Array(size * size * 4)
  const s = size
  // Maskable icons must keep their content inside the central 80% circle.
  const pad = options.maskable ? 0 : s * 0.06
  const radius = options.maskable ? 0 : s * 0.22
  const scale = options.maskable ? 0.78 : 1
  for (let y = 0; y < s; y++) {
    for (let x = 0; x < s; x++) {
      const px = x + 0.5
      const py = y + 0.5
      // Rounded-square background with a diagonal gradient.
      const qx = Math.max(Math.abs(px - s / 2) - (s / 2 - pad - radius), 0)
      const qy = Math.max(Math.abs(py - s / 2) - (s / 2 - pad - radius), 0)
      const bg = cover(Math.hypot(qx, qy) - radius, 1)
      const t = (px + py) / (2 * s)
      let r = 37 + (79 - 37) * t
      let g = 99 + (70 - 99) * t
      let b = 235 + (229 - 235) * t
      // Two rings, the right one drawn over the left.
      const ring = (cx: number) => Math.abs(Math.hypot(px - cx, py - s / 2) - s * 0.2 * scale) - s * 0.055 * scale
      const left = cover(ring(s / 2 - s * 0.12 * scale), 1)
      const right = cover(ring(s / 2 + s * 0.12 * scale), 1)
      const white = Math.max(left * 0.78, right)
      r = r + (255 - r) * white
      g = g + (255 - g) * white
      b = b + (255 - b) * white
      const i = (y * s + x) * 4
      rgba[i] = Math.round(r)
      rgba[i + 1] = Math.round(g)
      rgba[i + 2] = Math.round(b)
      rgba[i + 3] = Math.round(255 * bg)
    }
  }
  return encodePng(s, s, rgba)
}
