package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

func init() {
	register(&command{
		name:    "serve",
		summary: "run the coordination server for Tailscale clients",
		run:     runServe,
	})
}

// serveFlags are the flags of `tailplane serve`.
type serveFlags struct {
	config     string
	stateDir   string
	listen     string
	serverURL  string
	tlsCert    string
	tlsKey     string
	derpMap    string
	derpListen string
	stunListen string
	gitops     gitopsFlags // --repo and the sync loop; see gitops.go
}

func runServe(ctx context.Context, env *cliEnv, args []string) int {
	var f serveFlags
	fs := newFlags(env, "serve", "(--config DIR | --repo URL) --state-dir DIR [flags]")
	fs.StringVar(&f.config, "config", "", "directory holding the tailnet config, watched for changes (or --repo)")
	fs.StringVar(&f.stateDir, "state-dir", "", "directory for the database, the Noise key and DERP certificates (required)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to serve the control protocol on")
	fs.StringVar(&f.serverURL, "server-url", "", "URL clients reach the server at (default http(s)://<listen>; required when --listen is a wildcard address)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate file; serve HTTPS instead of HTTP (needs --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key file for --tls-cert")
	fs.StringVar(&f.derpMap, "derp-map", "", "JSON tailcfg.DERPMap file to hand out instead of running the embedded DERP relay")
	fs.StringVar(&f.derpListen, "derp-listen", "", "TLS address of the embedded DERP relay (default: the --listen host, random port)")
	fs.StringVar(&f.stunListen, "stun-listen", "", `UDP address of the embedded STUN server (default: the --listen host, random port; "off" disables)`)
	f.gitops.register(fs)
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if (f.config == "") == (f.gitops.repo == "") || f.stateDir == "" || (f.tlsCert == "") != (f.tlsKey == "") {
		fmt.Fprintln(env.stderr, "tailplane serve: --config and --state-dir are required (or --repo URL instead of --config, not both), and --tls-cert needs --tls-key")
		fs.Usage()
		return exitUsage
	}
	if err := serve(ctx, env, f); err != nil {
		fmt.Fprintf(env.stderr, "tailplane serve: %v\n", err)
		return exitProblems
	}
	return exitOK
}

func serve(ctx context.Context, env *cliEnv, f serveFlags) error {
	st, err := store.Open(ctx, f.stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	f.gitops.configDir, f.gitops.stateDir = f.config, f.stateDir
	webhookSecret, err := readSecretFile(f.gitops.webhookSecretFile, envWebhookSecret, env.getenv)
	if err != nil {
		return fmt.Errorf("--webhook-secret-file: %w", err)
	}
	gs, err := f.gitops.openSource(ctx, env, st, stampedLogf(env))
	if err != nil {
		return err
	}
	defer gs.close()
	tn := gs.applied // served at once; the sync loop catches up
	noiseKey, err := control.LoadOrCreateNoiseKey(f.stateDir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", f.listen, err)
	}
	defer ln.Close()
	scheme := "http"
	var cert *tls.Certificate
	if f.tlsCert != "" {
		c, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		cert, scheme = &c, "https"
	}
	serverURL := f.serverURL
	if serverURL == "" {
		if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
			return fmt.Errorf("--listen %s listens on every address, so tailplane cannot tell clients (and the DERP map) where it is: add --server-url, e.g. https://tailplane.example.com or http://192.0.2.10:%d", f.listen, a.Port)
		}
		serverURL = scheme + "://" + ln.Addr().String()
	}
	u, err := url.Parse(serverURL)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("--server-url %q is not a URL like https://tailplane.example.com", serverURL)
	}
	logf := stampedLogf(env)

	var derpMap *tailcfg.DERPMap
	var relay *control.DERP // the embedded relay; nil with --derp-map
	if f.derpMap != "" {
		b, err := os.ReadFile(f.derpMap)
		if err != nil {
			return fmt.Errorf("reading --derp-map: %w", err)
		}
		derpMap = new(tailcfg.DERPMap)
		if err := json.Unmarshal(b, derpMap); err != nil {
			return fmt.Errorf("--derp-map %s is not a JSON DERP map: %w", f.derpMap, err)
		}
	} else {
		listenHost, _, _ := net.SplitHostPort(ln.Addr().String())
		derpListen := f.derpListen
		if derpListen == "" {
			derpListen = net.JoinHostPort(listenHost, "0")
		}
		d, err := control.StartDERP(ctx, control.DERPConfig{
			Listen:     derpListen,
			STUNListen: f.stunListen,
			HostName:   u.Hostname(),
			Cert:       cert,
			StateDir:   f.stateDir,
		})
		if err != nil {
			return err
		}
		defer d.Close()
		relay, derpMap = d, d.Map
		for _, r := range d.Map.Regions {
			for _, n := range r.Nodes {
				logf("embedded DERP relay on %s:%d (STUN port %d)", n.HostName, n.DERPPort, n.STUNPort)
			}
		}
	}

	srv, err := control.New(ctx, control.Config{Store: st, NoiseKey: noiseKey, Tailnet: tn, DERPMap: derpMap, DERP: relay, ServerURL: serverURL, Logf: logf})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := gs.start(ctx, &f.gitops, st, srv, logf); err != nil {
		return err
	}
	defer gs.close() // before srv.Close: no publishing into a closed server
	hs := srv.HTTPServer(gs.handler(st, srv, webhookSecret))
	if cert != nil {
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	errc := make(chan error, 1)
	go func() {
		if cert != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	logf("tailplane serving %s on %s (clients: tailscale up --login-server=%s)", srv.Tailnet().Settings.Name, ln.Addr(), serverURL)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		logf("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		return nil
	}
}
