package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/tailplane/tailplane/schema"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

// AuditedNodeAction runs act, an action on node id (one of control's
// ExpireNode, DeleteNode, RenameNode, ApproveNode, RejectNode), and
// records it in the audit log the way the API does, whoever calls it
// (the API, the web console): who ("apikey:NAME", "user:LOGIN") did
// "VERB node NAME (ID)" plus detail, with the outcome, and counts it in m
// (nil: not counted). err is act's; auditErr is set when the log refused
// the entry, in which case the action may have happened all the same.
func AuditedNodeAction(ctx context.Context, ctl *control.Server, st *store.Store, m *Metrics, who string, id tailcfg.NodeID, verb, detail string,
	act func(ctx context.Context) (control.NodeInfo, error)) (n control.NodeInfo, err, auditErr error) {
	target := fmt.Sprintf("node %d", id)
	if before, err := ctl.Node(ctx, id); err == nil {
		target = fmt.Sprintf("node %s (%d)", before.Name, id)
	}
	n, err = act(ctx)
	return n, err, Audit(ctx, st, m, who, verb+" "+target+detail, err)
}

// Audit adds an entry to the audit log: who did what, with the outcome
// err (nil: "ok"), and counts it in m (nil: not counted). The error says
// what could not be recorded.
func Audit(ctx context.Context, st *store.Store, m *Metrics, who, what string, err error) error {
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	m.AuditAction(auditVerb(what), auditResult(err))
	if _, aerr := st.AddAudit(ctx, store.AuditEntry{Who: who, What: what, Result: result}); aerr != nil {
		return fmt.Errorf("%s: %s, but recording it in the audit log failed: %w", what, result, aerr)
	}
	return nil
}

// LookupAPIKey returns the name and role of the API key token declares
// under t's apiKeys, or "" for both. Every declared hash is compared, in
// constant time, whatever matches.
func LookupAPIKey(t *schema.Tailnet, token string) (name, role string) {
	sum := sha256.Sum256([]byte(token))
	got := []byte("sha256:" + hex.EncodeToString(sum[:]))
	for _, k := range t.APIKeys {
		if subtle.ConstantTimeCompare(got, []byte(strings.ToLower(k.SecretHash))) == 1 {
			name, role = k.Name, k.Role
		}
	}
	return name, role
}
