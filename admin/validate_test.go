package admin

import (
	"context"
	"strings"
	"testing"

	"github.com/tailplane/tailplane/schema"
)

// FuzzValidatePolicy: any posted body gets an answer without a panic; an
// answer with problems has a one-line message (gitops-pusher matches it
// with a one-line pattern) and lists every error in data, and one without
// is Tailscale's empty {}.
func FuzzValidatePolicy(f *testing.F) {
	served, diags := schema.LoadDir(context.Background(), "../examples/basic")
	if served == nil || diags.HasErrors() {
		f.Fatalf("loading examples/basic: %v", diags)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v := validatePolicy(context.Background(), served, body)
		ans := v.answer()
		errs := len(v.Diagnostics.Errors())
		if errs == 0 {
			if ans.Message != "" || ans.Data != nil {
				t.Fatalf("no errors, but answer %+v", ans)
			}
			return
		}
		if ans.Message == "" || strings.ContainsAny(ans.Message, "\r\n") {
			t.Errorf("message %q is empty or not one line", ans.Message)
		}
		n := 0
		for _, d := range ans.Data {
			n += len(d.Errors)
		}
		if n != errs {
			t.Errorf("data lists %d errors, want %d: %+v", n, errs, ans.Data)
		}
	})
}
