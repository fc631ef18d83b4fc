package acmedns

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTSIGKey(t *testing.T) {
	tests := []struct {
		in      string
		want    TSIGKey
		wantErr string
	}{
		{"hmac-sha256:acme:c2VjcmV0", TSIGKey{"acme.", "hmac-sha256", "c2VjcmV0"}, ""},
		{"acme.example:c2VjcmV0", TSIGKey{"acme.example.", "hmac-sha256", "c2VjcmV0"}, ""},
		{"HMAC-SHA512.:Key:c2VjcmV0\n", TSIGKey{"key.", "hmac-sha512", "c2VjcmV0"}, ""},
		{"hmac-md5:acme:c2VjcmV0", TSIGKey{}, "not supported"},
		{"acme", TSIGKey{}, "wrong form"},
		{"a:b:c:d", TSIGKey{}, "wrong form"},
		{":c2VjcmV0", TSIGKey{}, "name is empty"},
		{"acme:", TSIGKey{}, "empty secret"},
		{"acme:not*base64", TSIGKey{}, "not valid base64"},
	}
	for _, tt := range tests {
		got, err := ParseTSIGKey(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseTSIGKey(%q) error = %v; want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTSIGKey(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseTSIGKey(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestSecretRedacted(t *testing.T) {
	k := TSIGKey{Name: "acme.", Secret: "c2VjcmV0"}
	for _, s := range []string{fmtV(k), fmtPlusV(k), fmtGoV(k)} {
		if strings.Contains(s, "c2VjcmV0") {
			t.Errorf("formatted key %q contains the secret", s)
		}
	}
}

// FuzzParseTSIGKey checks that a parsed key is valid and reparses to
// itself, and that no error repeats the secret.
func FuzzParseTSIGKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseTSIGKey(s)
		if err != nil {
			// The error may name the key, so only a secret that appears
			// neither in the rest of the input nor in the fixed text counts.
			parts := strings.Split(strings.TrimSpace(s), ":")
			sec := parts[len(parts)-1]
			rest := strings.ToLower(strings.Join(parts[:len(parts)-1], ":"))
			msg := err.Error()
			fixed := "acmedns: TSIG key has the wrong form; want [algorithm:]name:base64-secret the secret is not valid base64 has an empty secret name is empty"
			if len(parts) > 1 && len(sec) >= 4 && strings.Contains(msg, sec) &&
				!strings.Contains(rest, strings.ToLower(strings.TrimSpace(sec))) && !strings.Contains(fixed, sec) {
				t.Errorf("error %q repeats the secret %q", msg, sec)
			}
			return
		}
		again, err := ParseTSIGKey(k.Algorithm + ":" + strings.TrimSuffix(k.Name, ".") + ":" + k.Secret.Reveal())
		if err != nil {
			t.Fatalf("reparsing %+v: %v", k, err)
		}
		if diff := cmp.Diff(k, again); diff != "" {
			t.Errorf("reparse (-first +second):\n%s", diff)
		}
	})
}

func fmtV(v any) string     { return fmt.Sprintf("%v", v) }
func fmtPlusV(v any) string { return fmt.Sprintf("%+v", v) }
func fmtGoV(v any) string   { return fmt.Sprintf("%#v", v) }
