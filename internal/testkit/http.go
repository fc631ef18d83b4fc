package testkit

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// Answer is what an HTTP server answered a Request.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Request sends method url with body (none when nil), the given headers,
// and key as a bearer token (no Authorization header when key is empty),
// and returns the whole answer; it fails the test when the request cannot
// be sent or its body not read.
func Request(t testing.TB, method, url, key string, body []byte, header map[string]string) Answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return Answer{Status: res.StatusCode, Header: res.Header, Body: b}
}
