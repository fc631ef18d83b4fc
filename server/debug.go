package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Timeouts of the debug listener. A CPU profile answers after the
// seconds it was asked for, so writes may take minutes.
const (
	debugReadTimeout  = 10 * time.Second
	debugWriteTimeout = 5 * time.Minute
	debugIdleTimeout  = time.Minute
)

// debugServer serves Go's runtime profiles (net/http/pprof) on a listener
// of its own (Config.DebugListen).
type debugServer struct {
	ln net.Listener
	hs *http.Server
}

// startDebug listens on addr and serves /debug/pprof/ there until close.
// It warns when addr is not a loopback address: the profiles (goroutine
// stacks among them) are served to anyone who reaches it.
func startDebug(addr string, logf func(string, ...any)) (*debugServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	d := &debugServer{ln: ln, hs: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: debugReadTimeout,
		ReadTimeout:       debugReadTimeout,
		WriteTimeout:      debugWriteTimeout,
		IdleTimeout:       debugIdleTimeout,
	}}
	go func() {
		if err := d.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("debug listener %s: %v", ln.Addr(), err)
		}
	}()
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		logf("server: the debug listener %s serves profiles without authentication: keep it off public networks", ln.Addr())
	} else {
		logf("server: runtime profiles on http://%s/debug/pprof/", ln.Addr())
	}
	return d, nil
}

func (d *debugServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := d.hs.Shutdown(ctx); err != nil {
		return d.hs.Close() // a profile in progress is cut short
	}
	return nil
}
