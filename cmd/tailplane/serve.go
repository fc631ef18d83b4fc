package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/tailplane/tailplane/server"
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
	config      string
	stateDir    string
	listen      string
	serverURL   string
	tlsCert     string
	tlsKey      string
	derpMap     string
	derpListen  string
	stunListen  string
	debugListen string      // --debug-listen
	oidcSecret  string      // --oidc-client-secret-file
	gitops      gitopsFlags // --repo and the sync pipeline; see gitops.go
	console     consoleFlags
	database    databaseFlags
	https       httpsFlags // --dns-listen and the DNS providers; see https.go
	mesh        meshFlags  // --derp-mesh-with, --derp-mesh-key-file; see derpmesh.go
}

// envOIDCClientSecret is where serve reads login.oidc's client secret
// from without --oidc-client-secret-file.
const envOIDCClientSecret = "TAILPLANE_OIDC_CLIENT_SECRET"

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
	fs.StringVar(&f.debugListen, "debug-listen", "", "address serving Go's runtime profiles (/debug/pprof/) without authentication, e.g. 127.0.0.1:6060 (default: none)")
	fs.StringVar(&f.oidcSecret, "oidc-client-secret-file", "", "file holding the client secret of login.oidc's client (default: $"+envOIDCClientSecret+"; none: a public client, PKCE only)")
	f.gitops.register(fs)
	f.database.register(fs)
	f.https.register(fs)
	f.console.register(fs)
	f.mesh.register(fs)
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
	logf := stampedLogf(env)
	cfg, err := f.serverConfig(env, logf)
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return f.startError(err)
	}
	defer srv.Close()
	logf("tailplane serving %s on %s (clients: tailscale up --login-server=%s)", srv.Tailnet().Settings.Name, srv.Addr(), srv.URL())
	select {
	case err := <-srv.Err():
		return err
	case <-ctx.Done():
		logf("shutting down")
		return nil
	}
}

// serverConfig turns the flags into the server's Config, reading the
// files they name.
func (f *serveFlags) serverConfig(env *cliEnv, logf func(string, ...any)) (server.Config, error) {
	cfg := server.Config{
		StateDir: f.stateDir, ConfigDir: f.config, Repo: f.gitops.repoConfig(env), FirstApplyWait: f.gitops.firstApplyTimeout,
		Listen: f.listen, ServerURL: f.serverURL, DERPListen: f.derpListen, STUNListen: f.stunListen,
		MinRetry: f.gitops.minRetry, MaxRetry: f.gitops.maxRetry, Logf: logf,
		ConsoleAllowHTTP: f.console.allowHTTP, RepoWebURL: f.console.repoWebURL, DebugListen: f.debugListen,
	}
	if err := f.https.apply(&cfg, env); err != nil {
		return cfg, err
	}
	if err := f.mesh.apply(&cfg, env); err != nil {
		return cfg, err
	}
	var err error
	if cfg.Database, err = f.database.url(env.getenv); err != nil {
		return cfg, err
	}
	if cfg.WebhookSecret, err = readSecretFile(f.gitops.webhookSecretFile, envWebhookSecret, env.getenv); err != nil {
		return cfg, fmt.Errorf("--webhook-secret-file: %w", err)
	}
	secret, err := readSecretFile(f.oidcSecret, envOIDCClientSecret, env.getenv)
	if err != nil {
		return cfg, fmt.Errorf("--oidc-client-secret-file: %w", err)
	}
	cfg.OIDCClientSecret = string(secret)
	if f.tlsCert != "" {
		c, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return cfg, fmt.Errorf("loading TLS certificate: %w", err)
		}
		cfg.TLS = &c
	}
	if f.derpMap != "" {
		b, err := os.ReadFile(f.derpMap)
		if err != nil {
			return cfg, fmt.Errorf("reading --derp-map: %w", err)
		}
		cfg.DERPMap = new(tailcfg.DERPMap)
		if err := json.Unmarshal(b, cfg.DERPMap); err != nil {
			return cfg, fmt.Errorf("--derp-map %s is not a JSON DERP map: %w", f.derpMap, err)
		}
	}
	return cfg, nil
}

// startError says what stopped server.New in terms of serve's flags.
func (f *serveFlags) startError(err error) error {
	var ue *server.ServerURLError
	if errors.As(err, &ue) {
		if ue.URL != "" {
			return fmt.Errorf("--server-url %q is not a URL like https://tailplane.example.com", ue.URL)
		}
		return fmt.Errorf("--listen %s listens on every address, so tailplane cannot tell clients (and the DERP map) where it is: add --server-url, e.g. https://tailplane.example.com or http://192.0.2.10:%d", f.listen, ue.Port)
	}
	var fe *server.FirstApplyError
	if errors.As(err, &fe) {
		return fmt.Errorf("config %s has problems (%s failed) and no revision was ever applied in --state-dir %s, so serve does not start (fix the config and start it again):\n%s",
			fe.ConfigDir, fe.Attempt.Step, fe.StateDir, fe.Problems())
	}
	return err
}
