package gitsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
)

// maxWebhookBody bounds the request body read to check a signature. GitHub
// caps push payloads at 25 MB; a config repository's pushes are far smaller.
const maxWebhookBody = 25 << 20

// WebhookHandler returns a handler for push webhooks (GitHub, Gitea,
// Forgejo: anything that signs the body with HMAC-SHA256 in
// X-Hub-Signature-256). A POST whose signature matches secret calls
// trigger and gets 202 Accepted; a "ping" event gets 200 without
// triggering. A missing or wrong signature gets 401, other methods 405, and
// an empty secret rejects every request, so a forgotten secret never opens
// the endpoint. The payload itself is not trusted or parsed: the loop
// always asks the remote for the head.
func WebhookHandler(secret []byte, trigger func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "webhook: POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "webhook: body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, "webhook: cannot read body", http.StatusBadRequest)
			return
		}
		if err := checkSignature(secret, r.Header.Get("X-Hub-Signature-256"), body); err != nil {
			http.Error(w, "webhook: "+err.Error(), http.StatusUnauthorized)
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

// checkSignature verifies header ("sha256=<hex HMAC>") for body.
func checkSignature(secret []byte, header string, body []byte) error {
	if len(secret) == 0 {
		return errors.New("no webhook secret configured")
	}
	got, err := parseSignature(header)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("signature does not match (hint: check the webhook secret)")
	}
	return nil
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
