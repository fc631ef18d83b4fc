//go:build tools

// Package compat pins Tailscale v1.80.3, the oldest client release
// tailplane supports, so its tailscaled and tailscale can be built for the
// compatibility end-to-end test. It is a module of its own, outside
// tailplane's build.
package compat

import (
	_ "tailscale.com/cmd/tailscale"
	_ "tailscale.com/cmd/tailscaled"
)
