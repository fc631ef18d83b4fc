package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"github.com/tailplane/tailplane/server"
	"tailscale.com/tailcfg"
)

func TestMeshFlags(t *testing.T) {
	dir := t.TempDir()
	meshKey := strings.Repeat("ab", 32)
	keyFile := filepath.Join(dir, "mesh.key")
	os.WriteFile(keyFile, []byte(meshKey+"\n"), 0o600)
	badKeyFile := filepath.Join(dir, "bad.key")
	os.WriteFile(badKeyFile, []byte("not-hex-secret-value"), 0o600)
	pin := "sha256-raw:" + strings.Repeat("0f", 32)
	peer := &tailcfg.DERPNode{HostName: "10.0.0.2", IPv4: "10.0.0.2", IPv6: "none", DERPPort: 8443, CertName: pin}
	other := &tailcfg.DERPNode{HostName: "relay3.example.com", DERPPort: 443}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantKey  string
		wantWith []*tailcfg.DERPNode
		wantErr  string
	}{
		{name: "none"},
		{name: "key file", args: []string{"--derp-mesh-key-file", keyFile, "--derp-mesh-with", "https://10.0.0.2:8443#" + pin + ",https://relay3.example.com"},
			wantKey: meshKey, wantWith: []*tailcfg.DERPNode{peer, other}},
		{name: "key in the environment", args: []string{"--derp-mesh-with", "https://relay3.example.com"}, env: map[string]string{envDERPMeshKey: meshKey},
			wantKey: meshKey, wantWith: []*tailcfg.DERPNode{other}},
		{name: "key without peers", args: []string{"--derp-mesh-key-file", keyFile}, wantKey: meshKey},
		{name: "peers without a key", args: []string{"--derp-mesh-with", "https://relay3.example.com"}, wantErr: "--derp-mesh-with needs the relay mesh key"},
		{name: "bad peer", args: []string{"--derp-mesh-key-file", keyFile, "--derp-mesh-with", "http://relay3.example.com"}, wantErr: "--derp-mesh-with: relay mesh peer"},
		{name: "bad key", args: []string{"--derp-mesh-key-file", badKeyFile}, wantErr: "must be 64 hexadecimal digits"},
		{name: "missing key file", args: []string{"--derp-mesh-key-file", filepath.Join(dir, "nope")}, wantErr: "--derp-mesh-key-file: reading secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m meshFlags
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			m.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			var cfg server.Config
			err := m.apply(&cfg, &cliEnv{getenv: func(k string) string { return tt.env[k] }})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("apply = %v; want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "not-hex") || strings.Contains(err.Error(), meshKey) {
					t.Errorf("the error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DERPMeshKey != tt.wantKey {
				t.Errorf("mesh key %q, want %q", cfg.DERPMeshKey, tt.wantKey)
			}
			if diff := cmp.Diff(tt.wantWith, cfg.DERPMeshWith); diff != "" {
				t.Errorf("mesh peers (-want +got):\n%s", diff)
			}
		})
	}
}
