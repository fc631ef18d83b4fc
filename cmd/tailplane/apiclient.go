package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// apiError is an error answer of the admin API: its HTTP status and the
// problem's detail.
type apiError struct {
	url    string
	status int
	text   string // "404 Not Found"
	detail string // empty when the body held none
}

func (e *apiError) Error() string {
	if e.detail != "" {
		return fmt.Sprintf("%s: %s: %s", e.url, e.text, e.detail)
	}
	return fmt.Sprintf("%s: %s", e.url, e.text)
}

// Exit codes of the commands on the admin API (nodes, users, audit), for
// scripts; docs/operations.md lists them.
const (
	exitAPIDenied   = 3 // 401/403: no API key, an unknown one, or one whose role is too low
	exitAPINotFound = 4 // 404: no such node
	exitAPIConflict = 5 // 409: the node is not in a state the action needs (not pending; name taken)
)

// exitCodeOf maps an API call's error to the exit code: exitUsage for a
// request the server calls malformed (400), the exitAPI codes above, and
// exitProblems for everything else (server unreachable, server errors).
func exitCodeOf(err error) int {
	var ae *apiError
	if !errors.As(err, &ae) {
		return exitProblems
	}
	switch ae.status {
	case http.StatusBadRequest:
		return exitUsage
	case http.StatusUnauthorized, http.StatusForbidden:
		return exitAPIDenied
	case http.StatusNotFound:
		return exitAPINotFound
	case http.StatusConflict:
		return exitAPIConflict
	}
	return exitProblems
}

// call sends method path (with body JSON-encoded, unless nil) to the admin
// API and decodes a 2xx answer into v (unless nil). An error answer is an
// *apiError.
func (c *apiClientFlags) call(ctx context.Context, env *cliEnv, method, path string, body, v any) error {
	token, err := readSecretFile(c.apiKeyFile, envAPIKey, env.getenv)
	if err != nil {
		return fmt.Errorf("--api-key-file: %w", err)
	}
	if token == nil && path != "/api/v1/status" {
		return &apiError{url: c.server + path, status: http.StatusUnauthorized, text: "no API key",
			detail: fmt.Sprintf("set $%s or --api-key-file to a key declared under apiKeys", envAPIKey)}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	url := strings.TrimSuffix(c.server, "/") + path
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return fmt.Errorf("--server %q: %w", c.server, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != nil {
		req.Header.Set("Authorization", "Bearer "+string(token))
	} // else: the status of a server that applied nothing yet is open
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking %s: %w", c.server, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	if res.StatusCode/100 != 2 {
		var p struct{ Detail, Error string } // a problem; Error alone from older servers
		json.Unmarshal(b, &p)
		return &apiError{url: url, status: res.StatusCode, text: res.Status, detail: cmp.Or(p.Detail, p.Error)}
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: the answer is not what this tailplane expects (version mismatch?): %w", url, err)
	}
	return nil
}
