//go:build tools

// Package tailplane pins the binaries that the end-to-end tests build from
// this module: the Tailscale clients and gitops-pusher (internal/tailscaled)
// and Let's Encrypt's Pebble ACME server (internal/pebble), so go.mod and
// go.sum cover every package they need and `go mod tidy` keeps them.
package tailplane

import (
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble"
	_ "tailscale.com/cmd/gitops-pusher"
	_ "tailscale.com/cmd/tailscale"
	_ "tailscale.com/cmd/tailscaled"
)
