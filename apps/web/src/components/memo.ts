import { Component, h, type FunctionComponent } from 'preact'

// preact keeps memo in preact/compat, whose React-compatibility layer
// (3 KB minified, with hooks into every render) would load with every page
// for this one function. The history's rows need only its shallow
// comparison.

/** `render`, redrawn only when a prop changes (compared with ===), as React.memo does. */
export function memo<P extends object>(render: FunctionComponent<P>): FunctionComponent<P> {
  class Memo extends Component<P> {
    override shouldComponentUpdate(next: P): boolean {
      return changed(this.props, next)
    }
    override render(props: P) {
      return h(render, props)
    }
  }
  return Memo as unknown as FunctionComponent<P>
}

function changed<P extends object>(a: P, b: P): boolean {
  for (const key in a) if (!(key in b)) return true
  for (const key in b) if (a[key] !== b[key]) return true
  return false
}
