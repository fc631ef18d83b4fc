package acmedns

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/internal/testkit"
)

func TestRFC2136Knot(t *testing.T) {
	const zone = "ts.example.test."
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	key, err := ParseTSIGKey("hmac-sha256:acme-key:" + secret)
	if err != nil {
		t.Fatal(err)
	}
	addr := testkit.StartKnot(t, zone, key.Algorithm, key.Name, key.Secret.Reveal())
	ctx := t.Context()
	const name = "_acme-challenge.node1.ts.example.test."

	for _, zoneCfg := range []string{zone, ""} {
		t.Run("zone="+zoneCfg, func(t *testing.T) {
			p, err := NewRFC2136(RFC2136Config{Server: addr, Zone: zoneCfg, Key: key})
			if err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				op, value string
				want      []string
			}{
				{"set", "token-a", []string{"token-a"}},
				{"set", "token-b", []string{"token-a", "token-b"}},
				{"delete", "token-a", []string{"token-b"}},
				{"delete", "token-b", nil},
				{"delete", "token-b", nil},
			}
			for i, st := range steps {
				var err error
				if st.op == "set" {
					err = p.SetTXT(ctx, name, st.value)
				} else {
					err = p.DeleteTXT(ctx, name, st.value)
				}
				if err != nil {
					t.Fatalf("step %d %s %s: %v", i, st.op, st.value, err)
				}
				got := testkit.LookupTXT(t, addr, name)
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Errorf("step %d %s %s: TXT at knotd (-want +got):\n%s", i, st.op, st.value, diff)
				}
			}
		})
	}

	t.Run("wrong key", func(t *testing.T) {
		bad := key
		bad.Secret = Secret(base64.StdEncoding.EncodeToString([]byte("not the right secret, not at all")))
		p, err := NewRFC2136(RFC2136Config{Server: addr, Zone: zone, Key: bad})
		if err != nil {
			t.Fatal(err)
		}
		err = p.SetTXT(ctx, name, "token-x")
		if err == nil {
			t.Fatalf("SetTXT with a wrong key succeeded")
		}
		if strings.Contains(err.Error(), bad.Secret.Reveal()) {
			t.Errorf("error contains the secret: %v", err)
		}
		if got := testkit.LookupTXT(t, addr, name); len(got) != 0 {
			t.Errorf("TXT after a refused update = %q; want none", got)
		}
	})
}
