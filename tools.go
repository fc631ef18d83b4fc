//go:build tools

// Package tailplane pins the Tailscale client binaries that the end-to-end
// tests build from this module (internal/tailscaled: tailscaled, tailscale
// and gitops-pusher), so go.mod and go.sum cover every package they need
// and `go mod tidy` keeps them.
package tailplane

import (
	_ "tailscale.com/cmd/gitops-pusher"
	_ "tailscale.com/cmd/tailscale"
	_ "tailscale.com/cmd/tailscaled"
)
