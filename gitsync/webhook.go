package gitsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxWebhookBody bounds the request body read to check a signature. The
// payload is only hashed, never parsed, and a push to a config repository
// is a few kilobytes; GitHub's 25 MB ceiling is far more than needed.
const maxWebhookBody = 1 << 20

// WebhookHandler returns a handler for push webhooks (GitHub, Gitea,
// Forgejo: anything that signs the body with HMAC-SHA256 in
// X-Hub-Signature-256). A POST whose signature matches secret calls
// trigger and gets 202 Accepted; a "ping" event gets 200 without
// triggering. Other methods get 405. An empty secret turns the webhook off:
// every request gets 403, so a forgotten secret never opens the endpoint.
// A missing or malformed signature header gets 401 and a body over 1 MiB
// 413, both before the body is read; a wrong signature gets 401. The
// payload itself is not trusted or parsed: the loop always asks the remote
// for the head.
func WebhookHandler(secret []byte, trigger func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "webhook: POST only", http.StatusMethodNotAllowed)
			return
		}
		// Everything that needs no body is checked before reading it, so an
		// unauthenticated sender costs no more than its headers.
		if len(secret) == 0 {
			http.Error(w, "webhook: off, no webhook secret is configured (hint: give the server a webhook secret)", http.StatusForbidden)
			return
		}
		want, err := parseSignature(r.Header.Get("X-Hub-Signature-256"))
		if err != nil {
			http.Error(w, "webhook: "+err.Error(), http.StatusUnauthorized)
			return
		}
		tooLarge := fmt.Sprintf("webhook: body over the %d MiB limit (a push event is a few KB; the next poll picks the commit up)", maxWebhookBody>>20)
		if r.ContentLength > maxWebhookBody {
			http.Error(w, tooLarge, http.StatusRequestEntityTooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			http.Error(w, tooLarge, http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, "webhook: cannot read body", http.StatusBadRequest)
			return
		}
		if !validMAC(secret, want, body) {
			http.Error(w, "webhook: signature does not match (hint: check the webhook secret)", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-GitHub-Event") == "ping" {
			w.WriteHeader(http.StatusOK)
			return
		}
		trigger()
		w.WriteHeader(http.StatusAccepted)
	})
}

// validMAC reports whether sig is body's HMAC-SHA256 under secret, in
// constant time.
func validMAC(secret, sig, body []byte) bool {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// parseSignature decodes an X-Hub-Signature-256 value.
func parseSignature(header string) ([]byte, error) {
	if header == "" {
		return nil, errors.New("missing X-Hub-Signature-256 header")
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return nil, errors.New(`X-Hub-Signature-256 must start with "sha256="`)
	}
	if len(hexSig) != 2*sha256.Size {
		return nil, errors.New("X-Hub-Signature-256 is not a SHA-256 HMAC")
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil {
		return nil, errors.New("X-Hub-Signature-256 is not hex")
	}
	return sig, nil
}
