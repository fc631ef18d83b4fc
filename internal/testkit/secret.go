package testkit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// SecretHash returns the secretHash a config declares for the key secret:
// "sha256:" and the lowercase hex SHA-256 of the full key.
func SecretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// WebhookSignature returns the X-Hub-Signature-256 header a Git host sends
// with body when its webhook secret is secret: "sha256=" and the hex
// HMAC-SHA256 of body.
func WebhookSignature(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
