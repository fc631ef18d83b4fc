package schema

import (
	"net"
	"net/url"
	"slices"
	"strings"
)

// login decodes the `login` key.
func (d *decoder) login(l *Login, n *node) {
	d.fields(n, "login", []string{"oidc"}, func(_, path string, v *node) {
		d.oidc(l, v, path)
	})
}

// oidc decodes `login.oidc` and checks it: the issuer is an https URL
// (http only on a loopback host), clientID is set, scopes include openid.
func (d *decoder) oidc(l *Login, n *node, path string) {
	o := &OIDC{EmailClaim: DefaultEmailClaim}
	scopesSet := false
	d.fields(n, path, []string{"issuer", "clientID", "scopes", "emailClaim"}, func(key, fp string, v *node) {
		if key == "scopes" {
			scopesSet = true
			o.Scopes = []string{}
			d.strList(v, fp, func(_ int, s, ep string) {
				if s == "" || strings.ContainsAny(s, " \t\n") {
					d.errorf(ep, "write one scope per element, e.g. \"email\"", "invalid scope %q", s)
					return
				}
				o.Scopes = append(o.Scopes, s)
			})
			if v.kind == kArray && !slices.Contains(o.Scopes, "openid") {
				d.errorf(fp, `add "openid": OpenID Connect requires it`, "scopes do not include \"openid\"")
			}
			return
		}
		s, ok := d.str(v, fp)
		if !ok {
			return
		}
		switch key {
		case "issuer":
			if msg := checkIssuer(s); msg != "" {
				d.errorf(fp, `write the provider's issuer URL, e.g. "https://accounts.google.com"`, "invalid issuer %q: %s", s, msg)
				return
			}
			o.Issuer = s
		case "clientID":
			if strings.TrimSpace(s) == "" {
				d.errorf(fp, "copy the client ID from the provider's app registration", "clientID is empty")
				return
			}
			o.ClientID = s
		case "emailClaim":
			if s == "" {
				d.errorf(fp, `remove the key for the default ("email")`, "emailClaim is empty")
				return
			}
			o.EmailClaim = s
		}
	})
	if n.kind != kObject {
		return
	}
	if n.get("issuer") == nil {
		d.errorf(path, `add "issuer": "https://..." (the provider's issuer URL)`, "login.oidc has no issuer")
	}
	if n.get("clientID") == nil {
		d.errorf(path, `add "clientID": the client ID registered at the provider`, "login.oidc has no clientID")
	}
	if !scopesSet {
		o.Scopes = slices.Clone(DefaultOIDCScopes)
	}
	l.OIDC = o
}

// checkIssuer explains what is wrong with an issuer URL, or returns "".
func checkIssuer(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "not a URL"
	}
	if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "not an absolute http(s) URL"
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "an issuer has no query, fragment or user info"
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return "http is allowed only for a loopback host; use https"
	}
	return ""
}

// isLoopbackHost reports whether host is "localhost" or a loopback address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
