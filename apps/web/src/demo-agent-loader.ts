// The demo agent (demo-agent.ts) is a chunk of its own: a page takes typing
// before it arrives, since it only answers once a person has written (or
// resumes a reply a reload cut off). The session view asks for it as the
// session opens, so it is there by the first send. A failed fetch is
// forgotten, so the next need tries again.

export type DemoAgent = typeof import('./demo-agent')

let loading: Promise<DemoAgent> | null = null

export function loadDemoAgent(): Promise<DemoAgent> {
  const attempt = (loading ??= import('./demo-agent'))
  attempt.catch(() => {
    if (loading === attempt) loading = null
  })
  return attempt
}
