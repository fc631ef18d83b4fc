package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tailscale/hujson"
)

// Tailscale's API v2, the subset existing tools use (docs/api-v2.md):
//
//	GET  /api/v2/tailnet/{tailnet}/acl           the served policy, with an ETag
//	POST /api/v2/tailnet/{tailnet}/acl           refused: the policy is managed in Git
//	POST /api/v2/tailnet/{tailnet}/acl/validate  lint's checks on a posted policy
//	GET  /api/v2/tailnet/{tailnet}/devices       the nodes, in Tailscale's device shape (v2devices.go)
//	GET  /api/v2/device/{id}                     one node
//	DELETE /api/v2/device/{id}                   (admin) delete the node, audited
//
// {tailnet} is "-" (the API key's tailnet), or the served tailnet's name
// or domain. The API key is sent as "Authorization: Bearer KEY" or, as
// Tailscale's clients and gitops-pusher do, as the HTTP Basic user name
// with an empty password. Errors are Tailscale's {"message": "..."}.

// maxPolicySize bounds a posted policy.
const maxPolicySize = 4 << 20

// v2 registers the API v2 endpoints on mux.
func (a *api) v2(mux *http.ServeMux) {
	mux.Handle("GET /api/v2/tailnet/{tailnet}/acl", a.authV2(RoleRead, a.getACL))
	mux.Handle("POST /api/v2/tailnet/{tailnet}/acl", a.authV2(RoleRead, a.setACL))
	mux.Handle("POST /api/v2/tailnet/{tailnet}/acl/validate", a.authV2(RoleRead, a.validateACL))
	a.v2Devices(mux)
	mux.HandleFunc("/api/v2/", func(w http.ResponseWriter, r *http.Request) {
		v2Error(w, http.StatusNotFound, r.Method+" "+r.URL.Path+" is not part of the API v2 subset tailplane serves (see docs/api-v2.md)")
	})
}

// keyOf returns the API key r carries: a bearer token, or an HTTP Basic
// user name with an empty password. Without one, problem says what is
// wrong.
func keyOf(r *http.Request) (key, problem string) {
	if user, pass, basic := r.BasicAuth(); basic {
		switch {
		case user == "":
			return "", "HTTP Basic without a user name (hint: the API key goes in the user name, with an empty password)"
		case pass != "":
			return "", "HTTP Basic with a password (hint: the API key goes in the user name, with an empty password)"
		}
		return user, ""
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" { // the scheme is case-insensitive (RFC 9110)
		return "", "missing API key (hint: send it as the HTTP Basic user name with an empty password, or as Authorization: Bearer <key>)"
	}
	return token, ""
}

// authV2 wraps h so it runs only for an applied API key whose role allows
// need, in a path naming the served tailnet if it names one; failures
// answer in Tailscale's error shape.
func (a *api) authV2(need string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, problem := keyOf(r)
		if problem != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="tailplane"`)
			v2Error(w, http.StatusUnauthorized, problem)
			return
		}
		name, role := a.key(token)
		tailnet := r.PathValue("tailnet") // "" on the device paths, which have none
		switch {
		case role == "":
			w.Header().Set("WWW-Authenticate", `Basic realm="tailplane"`)
			v2Error(w, http.StatusUnauthorized, "unknown API key (hint: its sha256 must be a secretHash under apiKeys in the applied config)")
		case need == RoleAdmin && role != RoleAdmin:
			v2Error(w, http.StatusForbidden, "this API key has role "+role+"; this request needs role admin")
		case tailnet != "" && !a.isServedTailnet(tailnet):
			v2Error(w, http.StatusNotFound, fmt.Sprintf("unknown tailnet %q (hint: use \"-\", the API key's tailnet, or the tailnet's name or domain)", tailnet))
		default:
			ctx := context.WithValue(r.Context(), roleKey{}, role)
			h(w, r.WithContext(context.WithValue(ctx, keyNameKey{}, name))) // as auth does, for the audit log
		}
	})
}

// isServedTailnet reports whether name, a {tailnet} path element, names
// the served tailnet.
func (a *api) isServedTailnet(name string) bool {
	if name == "-" {
		return true
	}
	s := a.cfg.Served().Settings.WithDefaults()
	return (s.Name != "" && strings.EqualFold(name, s.Name)) || strings.EqualFold(name, s.Domain)
}

// getACL answers the served policy: its Tailscale keys as formatted
// HuJSON, with an ETag that is the SHA-256 of that text, which is how
// gitops-pusher sums its local file (so the ETag equals the sum of a local
// file exactly when the file, formatted, is the served policy).
// "?details=1" wraps it as Tailscale's client.ACLHuJSON expects.
func (a *api) getACL(w http.ResponseWriter, r *http.Request) {
	raw, err := json.Marshal(a.cfg.Served().Policy)
	if err == nil {
		raw, err = hujson.Format(raw)
	}
	if err != nil {
		v2Error(w, http.StatusInternalServerError, "encoding the served policy: "+err.Error())
		return
	}
	sum := sha256.Sum256(raw)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
	if r.URL.Query().Get("details") == "1" {
		writeJSON(w, struct {
			ACL      []byte   `json:"acl"`
			Warnings []string `json:"warnings"`
		}{raw, []string{}})
		return
	}
	ct := "application/json"
	if strings.Contains(r.Header.Get("Accept"), "application/hujson") {
		ct = "application/hujson"
	}
	w.Header().Set("Content-Type", ct)
	w.Write(raw)
}

// setACL refuses every write to the policy, as Tailscale does for a
// tailnet whose policy is managed externally.
func (a *api) setACL(w http.ResponseWriter, r *http.Request) {
	v2Error(w, http.StatusForbidden, "the policy is managed in Git: tailplane serves what the config repository declares, so change it with a commit "+
		"(check it first with `tailplane lint`, or POST it to /api/v2/tailnet/-/acl/validate, e.g. `gitops-pusher test`)")
}

// validateACL runs lint's checks on the posted policy (see
// validatePolicy) and answers in Tailscale's shape: {} when it is valid,
// else a message and the problems (200 either way, since the policy was
// checked; Tailscale's client reads the problems only from a 200).
func (a *api) validateACL(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPolicySize))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		v2Error(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the policy is larger than %d bytes", maxPolicySize))
		return
	case err != nil:
		v2Error(w, http.StatusBadRequest, "reading the policy: "+err.Error())
		return
	}
	res := validatePolicy(r.Context(), a.cfg.Served(), body)
	writeJSON(w, res.answer())
}

// v2Error answers with Tailscale's error body: {"message": msg}.
func v2Error(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
