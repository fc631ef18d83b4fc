package control

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"tailscale.com/derp/derpserver"
	"tailscale.com/net/stunserver"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// DERPConfig configures the embedded DERP relay and STUN server.
type DERPConfig struct {
	// Listen is the TCP address of the relay's TLS listener; empty means
	// "127.0.0.1:0" (a random loopback port).
	Listen string
	// STUNListen is the UDP address of the STUN server; empty means the
	// host of Listen with a random port. "off" disables STUN.
	STUNListen string
	// HostName is the name or IP clients dial; empty means the host of
	// the listener's address.
	HostName string
	// Cert is the TLS certificate to serve. Nil means a self-signed one,
	// kept in StateDir and pinned in the DERP map by its SHA-256.
	Cert *tls.Certificate
	// StateDir holds the self-signed certificate; empty means a fresh
	// certificate on every start.
	StateDir string
	// PinnedCert, when set (and Cert is not), is the self-signed
	// certificate to serve and pin instead of the one in StateDir: the one
	// replicas share (see NewSelfSignedDERPCert).
	PinnedCert *tls.Certificate
	// RegionID is the DERP region ID; zero means 900.
	RegionID int
	// Timeouts bound the relay listener's TLS handshakes and plain HTTP
	// requests (Header, Read, Write, Idle); the zero value means the
	// defaults documented on Timeouts. An upgraded DERP connection is
	// long-lived: derpserver gives the client 10 s to prove its key, then
	// sends keep-alives every 60 s and drops a client whose socket stops
	// taking writes.
	Timeouts Timeouts
	// MeshKey is the secret the relays of one region share to mesh (64
	// hex digits, as derper's mesh key): a relay client presenting it is
	// another relay of the region, which may learn this relay's clients
	// and forward packets to them (DERP.StartMesh, derpmesh.go). It never
	// appears in a log or an error. Empty means no mesh: only the
	// tailnet's nodes are served.
	MeshKey string
	// Logf logs relay events; nil discards them.
	Logf func(format string, args ...any)
}

// DERP is a running embedded DERP relay and STUN server. It relays only
// for the nodes of the Server it is attached to (Config.DERP); until then
// it refuses every client.
type DERP struct {
	Map *tailcfg.DERPMap // the map to hand to clients

	srv  *derpserver.Server
	node *tailcfg.DERPNode // the relay's own node in Map
	http *http.Server
	ln   net.Listener
	stun *stunserver.STUNServer
	stop context.CancelFunc
	logf func(format string, args ...any)
	// admit says why a node key may not use the relay, or nil; set by
	// the Server the relay is attached to.
	admit atomic.Pointer[func(key.NodePublic) error]

	connMu sync.Mutex                                 // guards conns
	conns  map[key.NodePublic]map[*relayConn]struct{} // admitted connections by client key
}

// StartDERP starts the embedded relay. Clients talk to DERP only over TLS,
// so without a certificate it serves a self-signed one and pins it in the
// map with CertName "sha256-raw:<hex>".
func StartDERP(ctx context.Context, cfg DERPConfig) (*DERP, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("control: DERP listener: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	host := cfg.HostName
	if host == "" {
		host = addr.IP.String()
		if addr.IP.IsUnspecified() {
			host = "127.0.0.1"
		}
	}
	regionID := cfg.RegionID
	if regionID == 0 {
		regionID = 900
	}
	dnode := &tailcfg.DERPNode{
		Name:     strconv.Itoa(regionID) + "a",
		RegionID: regionID,
		HostName: host,
		DERPPort: addr.Port,
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			dnode.IPv4, dnode.IPv6 = host, "none"
		} else {
			dnode.IPv6, dnode.IPv4 = host, "none"
		}
	}
	cert := cfg.Cert
	if cert == nil {
		c, err := cfg.PinnedCert, error(nil)
		if c == nil {
			c, err = loadOrCreateSelfSigned(cfg.StateDir, host)
		}
		if err != nil {
			ln.Close()
			return nil, err
		}
		cert = c
		sum := sha256.Sum256(c.Certificate[0])
		dnode.CertName = "sha256-raw:" + hex.EncodeToString(sum[:])
	}

	runCtx, cancel := context.WithCancel(context.Background())
	d := &DERP{srv: derpserver.New(key.NewNode(), logf), node: dnode, ln: ln, stop: cancel, logf: logf, conns: map[key.NodePublic]map[*relayConn]struct{}{}}
	if cfg.MeshKey != "" {
		if err := d.srv.SetMeshKey(cfg.MeshKey); err != nil { // its error may quote the key
			cancel()
			ln.Close()
			return nil, errors.New("control: the DERP mesh key must be 64 hexadecimal digits (make one with: openssl rand -hex 32)")
		}
	}
	if cfg.STUNListen != "off" {
		stunAddr := cfg.STUNListen
		if stunAddr == "" {
			stunAddr = net.JoinHostPort(addr.IP.String(), "0")
		}
		d.stun = stunserver.New(runCtx)
		if err := d.stun.Listen(stunAddr); err != nil {
			cancel()
			ln.Close()
			return nil, fmt.Errorf("control: STUN listener: %w", err)
		}
		dnode.STUNPort = d.stun.LocalAddr().(*net.UDPAddr).Port
		go d.stun.Serve()
	} else {
		dnode.STUNPort = -1
	}

	mux := http.NewServeMux()
	mux.Handle("/derp", d.gate(derpserver.Handler(d.srv)))
	mux.HandleFunc("/derp/probe", derpserver.ProbeHandler)
	mux.HandleFunc("/derp/latency-check", derpserver.ProbeHandler)
	mux.HandleFunc("/generate_204", derpserver.ServeNoContent)
	d.http = cfg.Timeouts.httpServer(mux)
	d.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	go d.http.Serve(tls.NewListener(ln, d.http.TLSConfig))

	d.Map = &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
		regionID: {
			RegionID:   regionID,
			RegionCode: "tailplane",
			RegionName: "tailplane embedded relay",
			Nodes:      []*tailcfg.DERPNode{dnode},
		},
	}}
	return d, nil
}

// Close stops the relay and the STUN server.
func (d *DERP) Close() error {
	d.stop()
	err := d.http.Close()
	d.srv.Close()
	return err
}

// loadOrCreateSelfSigned returns the relay's self-signed certificate for
// host, reusing the one in stateDir while it is valid and names host.
func loadOrCreateSelfSigned(stateDir, host string) (*tls.Certificate, error) {
	var certPath, keyPath string
	if stateDir != "" {
		certPath = filepath.Join(stateDir, "derp-cert.pem")
		keyPath = filepath.Join(stateDir, "derp-key.pem")
		if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
			if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil &&
				time.Now().Add(24*time.Hour).Before(leaf.NotAfter) && leaf.VerifyHostname(host) == nil {
				return &c, nil
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("control: reading DERP certificate: %w; delete %s and %s to make new ones", err, certPath, keyPath)
		}
	}
	certPEM, keyPEM, err := NewSelfSignedDERPCert(host)
	if err != nil {
		return nil, err
	}
	if stateDir != "" {
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return nil, err
		}
		if err := WriteStateFile(keyPath, keyPEM); err != nil {
			return nil, fmt.Errorf("control: saving DERP key: %w", err)
		}
		if err := WriteStateFile(certPath, certPEM); err != nil {
			return nil, fmt.Errorf("control: saving DERP certificate: %w", err)
		}
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// NewSelfSignedDERPCert makes a self-signed certificate for the embedded
// relay on host, valid for five years, as PEM: clients trust it by its
// pin in the DERP map, not by its name.
func NewSelfSignedDERPCert(host string) (certPEM, keyPEM []byte, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host, Organization: []string{"tailplane embedded DERP"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("control: creating DERP certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}
