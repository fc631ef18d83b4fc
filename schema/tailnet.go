package schema

import (
	"net/netip"
	"time"
)

// Tailnet is the whole declared tailnet: tailplane's own keys plus the
// Tailscale policy document. It is the output of Load and the input of the
// policy compiler and of reconcile. A Tailnet is immutable once loaded.
type Tailnet struct {
	Settings Settings                  // the `tailnet` key
	Users    map[string]User           // the `users` key, by login ("alice@example.com")
	DNS      DNS                       // the `dns` key
	Routes   map[string][]netip.Prefix // the `routes` key: approved routes by owner ("tag:x", a login), optionally "/node-name"; see RouteKey
	AuthKeys map[string]AuthKey        // the `authKeys` key, by key name
	APIKeys  map[string]APIKey         // the `apiKeys` key, by key name
	Login    Login                     // the `login` key

	// Policy holds Tailscale's policy-file keys (acls, grants, groups, ...),
	// accepted verbatim at the top level of the document.
	Policy Policy

	// Source maps field paths ("acls[3].dst[0]") back to positions in the
	// user's files. Nil for a Tailnet built in code.
	Source *Source
}

// Settings is the `tailnet` key.
type Settings struct {
	Name   string // display name; empty means "tailnet"
	Domain string // MagicDNS suffix such as "tail.example.com"; empty means "tailnet.internal"

	IPv4 netip.Prefix // node IPv4 range; zero means 100.64.0.0/10
	IPv6 netip.Prefix // node IPv6 range; zero means fd7a:115c:a1e0::/48

	// NodeKeyExpiry is how long a node key lives after registration.
	// Zero means keys never expire ("0" in the file); DefaultNodeKeyExpiry
	// applies when the key is absent.
	NodeKeyExpiry time.Duration
	// EphemeralTimeout is how long an ephemeral node may stay disconnected
	// before it is removed. Zero means DefaultEphemeralTimeout.
	EphemeralTimeout time.Duration

	// SSH gives every node Tailscale's ssh capability, so `tailscale up
	// --ssh` may run the Tailscale SSH server; who may connect is still up
	// to the `ssh` rules. False means no node may run it. The loader sets
	// it to true when the key is absent, as Tailscale does.
	SSH bool
	// FileSharing gives every node Tailscale's file-sharing capability
	// (Taildrop: `tailscale file cp` between a user's own nodes). False
	// means no node may send or receive files. The loader sets it to true
	// when the key is absent, as Tailscale does.
	FileSharing bool
	// DeviceApproval makes newly registered nodes wait for an admin's
	// approval (`tailplane nodes approve`, POST /api/v1/nodes/{id}/approve)
	// before they get peers or traffic, unless their auth key is
	// preauthorized. False means every registered node is authorized.
	DeviceApproval bool
}

// WithDefaults returns s with the defaults its zero Domain, IPv4, IPv6 and
// EphemeralTimeout stand for filled in. The loader starts from them, so a
// loaded Tailnet has them already; a Tailnet built in code may leave them
// zero. NodeKeyExpiry, SSH and FileSharing are kept: their zero values mean
// never and off.
func (s Settings) WithDefaults() Settings {
	if s.Domain == "" {
		s.Domain = DefaultDomain
	}
	if !s.IPv4.IsValid() {
		s.IPv4 = DefaultIPv4
	}
	if !s.IPv6.IsValid() {
		s.IPv6 = DefaultIPv6
	}
	if s.EphemeralTimeout <= 0 {
		s.EphemeralTimeout = DefaultEphemeralTimeout
	}
	return s
}

// Defaults applied by the loader when a setting is absent.
const (
	DefaultDomain           = "tailnet.internal"
	DefaultNodeKeyExpiry    = 180 * 24 * time.Hour
	DefaultEphemeralTimeout = 30 * time.Minute
)

var (
	DefaultIPv4 = netip.MustParsePrefix("100.64.0.0/10")
	DefaultIPv6 = netip.MustParsePrefix("fd7a:115c:a1e0::/48")
)

// Role is a user's role in the tailnet. It feeds autogroup:owner, admin and member.
type Role string

const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// User is one entry of the `users` key.
type User struct {
	Login string // the map key, e.g. "alice@example.com"
	Name  string // display name; empty means the login's local part
	Role  Role   // empty means RoleMember
}

// DNS is the `dns` key.
type DNS struct {
	MagicDNS      bool                    // serve <host>.<domain> names
	Nameservers   []netip.Addr            // global resolvers; empty means the OS default
	SplitDNS      map[string][]netip.Addr // resolvers by domain suffix
	SearchDomains []string
	Records       []DNSRecord // extra records served by MagicDNS
	// HTTPS lets nodes get certificates for their names: each node's DNS
	// config lists its FQDN in CertDomains, nodes get the "https"
	// capability, and /machine/set-dns publishes their ACME DNS-01
	// records (docs/https.md). False means none of that.
	HTTPS bool
}

// DNSRecord is one entry of `dns.records`.
type DNSRecord struct {
	Name  string // fully qualified, without trailing dot
	Type  string // "A" or "AAAA"
	Value netip.Addr
}

// AuthKey is one entry of the `authKeys` key. Exactly one of User and Tags is set.
type AuthKey struct {
	Name          string    // the map key
	User          string    // login the registered nodes belong to
	Tags          []string  // tags given to registered nodes
	Reusable      bool      // false: the key registers one node only
	Ephemeral     bool      // nodes are removed after logout or inactivity
	Preauthorized bool      // its nodes skip device approval (tailnet.deviceApproval); defaults to true when absent
	Expires       time.Time // zero means never
	Uses          int       // maximum registrations; 0 means unlimited (one when !Reusable)
	SecretHash    string    // "sha256:" + hex(sha256(full key string))
}

// APIKey is one entry of the `apiKeys` key, for the admin API.
type APIKey struct {
	Name       string // the map key
	Role       string // "admin" or "read"
	SecretHash string // "sha256:" + hex(sha256(full key string))
}

// Login is the `login` key: how people log in interactively (`tailscale up`
// without an auth key). The zero value means no identity provider: an
// admin admits each login by its ID (`tailplane logins approve`).
type Login struct {
	// OIDC is the OpenID Connect provider logins go to; nil means none.
	OIDC *OIDC
}

// OIDC is `login.oidc`. Its client secret is never in the config; the
// server reads it from a file or the environment.
type OIDC struct {
	Issuer   string // provider's issuer URL, https (http only on loopback)
	ClientID string // the client registered at the provider; never empty
	// Scopes requested; they include "openid". The loader sets
	// DefaultOIDCScopes when the key is absent.
	Scopes []string
	// EmailClaim is the ID token claim holding the user's login. The
	// loader sets DefaultEmailClaim when the key is absent.
	EmailClaim string
}

// Defaults of `login.oidc`.
const DefaultEmailClaim = "email"

// DefaultOIDCScopes are the scopes requested when login.oidc.scopes is absent.
var DefaultOIDCScopes = []string{"openid", "email", "profile"}
