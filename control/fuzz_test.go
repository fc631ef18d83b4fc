package control

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// fuzzRequest sends body to a Noise endpoint handler as machine mk and
// checks that the server answers sensibly.
func fuzzRequest(t *testing.T, h http.HandlerFunc, path string, mk key.MachinePublic, body []byte) *httptest.ResponseRecorder {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	ctx = context.WithValue(ctx, machineKeyCtx{}, mk)
	req := httptest.NewRequestWithContext(ctx, "POST", path, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h(rec, req)
	return rec
}

func FuzzRegister(f *testing.F) {
	ts := startServer(f, testTailnet(), "")
	mk := key.NewMachine().Public()
	f.Add([]byte(`{"Version":142,"NodeKey":"nodekey:0000000000000000000000000000000000000000000000000000000000000001","Auth":{"AuthKey":"` + aliceKey + `"},"Hostinfo":{"Hostname":"fuzz","RequestTags":["tag:server"]}}`))
	f.Add([]byte(`{"Version":142,"NodeKey":"nodekey:00","Expiry":"1970-01-01T00:02:03Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := fuzzRequest(t, ts.serveRegister, "/machine/register", mk, body)
		switch rec.Code {
		case 200:
			var resp tailcfg.RegisterResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("200 with a body that is not a RegisterResponse: %q", rec.Body.Bytes())
			}
		case 400:
		default:
			t.Fatalf("unexpected HTTP %d: %s", rec.Code, rec.Body.Bytes())
		}
	})
}

func FuzzMap(f *testing.F) {
	ts := startServer(f, testTailnet(), "")
	n := newRawNode(f, ts)
	n.register(n.registerReq(aliceKey))
	seed, _ := json.Marshal(n.mapReq(false, "192.0.2.1:1"))
	f.Add(seed)
	f.Add([]byte(`{"Version":142,"Stream":true,"NodeKey":"nodekey:00"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := fuzzRequest(t, ts.serveMap, "/machine/map", n.mk.Public(), body)
		switch rec.Code {
		case 200, 400, 401, 403:
		case 503: // the request's short context ended while queued
		default:
			t.Fatalf("unexpected HTTP %d: %s", rec.Code, rec.Body.Bytes())
		}
	})
}

func FuzzSetDNS(f *testing.F) {
	_, pub := startChallengeDNS(f, "ts.example.com", 1<<20)
	ts := startServerWith(f, httpsTailnet(), "", func(c *Config) { c.CertDNS = pub })
	n := newRawNode(f, ts)
	n.register(n.registerReq(aliceKey))
	seed, _ := json.Marshal(setDNSReq(n, "_acme-challenge.raw.ts.example.com", "TXT", "token"))
	f.Add(seed)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := fuzzRequest(t, ts.serveSetDNS, "/machine/set-dns", n.mk.Public(), body)
		switch rec.Code {
		case 200:
			var resp tailcfg.SetDNSResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("200 with a body that is not a SetDNSResponse: %q", rec.Body.Bytes())
			}
		case 400, 401, 403, 429:
		case 503: // the request's short context ended while queued
		default:
			t.Fatalf("unexpected HTTP %d: %s", rec.Code, rec.Body.Bytes())
		}
	})
}
