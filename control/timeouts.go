package control

import (
	"net/http"
	"time"

	"golang.org/x/net/http2"
)

// Timeouts bound how long a client may hold a connection without making
// progress, on every listener tailplane runs: the main one (plain HTTP:
// /key, the Noise upgrade, the admin API), the HTTP/2 connections over
// Noise, and the embedded DERP relay. Each zero field means the default
// named in its comment; docs/server.md explains each choice.
type Timeouts struct {
	// Header is how long a client may take to send a request's headers,
	// and over TLS to complete the handshake first; zero means 10 s.
	Header time.Duration
	// Read is how long reading one whole request, body included, may
	// take: a plain HTTP request on the main and relay listeners, and
	// each request's body over Noise; zero means 30 s.
	Read time.Duration
	// Write is how long answering one plain HTTP request may take on the
	// main and relay listeners; zero means 60 s. Connections upgraded to
	// Noise or DERP leave it behind (they are long-lived), and map
	// streams over Noise have none.
	Write time.Duration
	// Idle is how long a plain HTTP keep-alive connection may wait for
	// its next request; zero means 60 s.
	Idle time.Duration
	// NoiseIdle is how long an HTTP/2 connection over Noise may stay open
	// with no request in flight; zero means 2 min. A node that polls has
	// its map stream open all the time, so this closes only connections
	// of clients that stopped polling or never started.
	NoiseIdle time.Duration
	// NoisePing is how long an HTTP/2 connection over Noise may be silent
	// before the server pings the client; a client that does not answer
	// within 15 s more is dropped. Zero means 60 s.
	NoisePing time.Duration
	// NoiseWrite is how long an HTTP/2 connection over Noise may have
	// data to send that the client takes none of; the connection is then
	// closed, with every stream on it. Zero means 60 s. It bounds a
	// client that stops reading its whole connection, which the per-message
	// deadline (Limits.WriteTimeout) cannot: that one resets a stream, but
	// the connection's own writer stays blocked.
	NoiseWrite time.Duration
}

// Limits of every connection, not configurable.
const (
	// maxHeaderBytes caps a request's headers on every listener (and over
	// Noise); a Tailscale client sends well under 4 KiB.
	maxHeaderBytes = 64 << 10
	// maxNoiseStreams caps concurrent requests on one Noise connection.
	// A client has its map stream, an occasional endpoint update and a
	// registration in flight at most.
	maxNoiseStreams = 32
	// noisePingTimeout is how long a pinged Noise client may take to answer.
	noisePingTimeout = 15 * time.Second
)

// withDefaults fills in the documented defaults of t.
func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Header, 10*time.Second)
	def(&t.Read, 30*time.Second)
	def(&t.Write, 60*time.Second)
	def(&t.Idle, 60*time.Second)
	def(&t.NoiseIdle, 2*time.Minute)
	def(&t.NoisePing, 60*time.Second)
	def(&t.NoiseWrite, 60*time.Second)
	return t
}

// httpServer returns an http.Server for h with t's plain-HTTP timeouts.
func (t Timeouts) httpServer(h http.Handler) *http.Server {
	t = t.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.Header,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// noiseServer returns the HTTP/2 server for connections over Noise and the
// base config of their requests: a per-request body read timeout, but no
// per-request write timeout, since map streams are long-lived writes. A
// connection whose client takes no bytes for NoiseWrite is closed.
func (t Timeouts) noiseServer() (*http2.Server, *http.Server) {
	t = t.withDefaults()
	h2 := &http2.Server{
		MaxConcurrentStreams: maxNoiseStreams,
		IdleTimeout:          t.NoiseIdle,
		ReadIdleTimeout:      t.NoisePing,
		PingTimeout:          noisePingTimeout,
		WriteByteTimeout:     t.NoiseWrite,
	}
	base := &http.Server{ReadTimeout: t.Read, MaxHeaderBytes: maxHeaderBytes}
	return h2, base
}

// HTTPServer returns the http.Server to serve h (normally a handler that
// includes Handler) on the main listener, with the Server's Timeouts.
// Serve it with Serve or ServeTLS; Shutdown it before Close.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	return s.timeouts.httpServer(h)
}
