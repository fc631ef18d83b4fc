//go:build tools

// Package tailplane pins dependencies that packages under construction will import.
package tailplane

import (
	_ "cuelang.org/go/cue/cuecontext"
	_ "cuelang.org/go/cue/load"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/spf13/pflag"
	_ "github.com/tailscale/hujson"
	_ "golang.org/x/net/http2"
	_ "modernc.org/sqlite"
	_ "tailscale.com/cmd/tailscale"
	_ "tailscale.com/cmd/tailscaled"
	_ "tailscale.com/control/controlhttp/controlhttpserver"
	_ "tailscale.com/derp/derpserver"
	_ "tailscale.com/net/stunserver"
	_ "tailscale.com/tailcfg"
	_ "tailscale.com/tsnet"
	_ "tailscale.com/util/zstdframe"
)
