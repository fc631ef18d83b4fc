package schema

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRouteKeyChecks covers the checks of `routes` keys: owners, owner
// plus node name, and the old bare node name form.
func TestRouteKeyChecks(t *testing.T) {
	const decl = `"users": {"alice@example.com": {}, "bob@example.com": {}}, "tagOwners": {"tag:router": [], "tag:exit": []}, `
	routes := func(key string) string {
		return `{` + decl + `"routes": {` + strconv.Quote(key) + `: ["10.0.0.0/8"]}}`
	}
	col := len(`{` + decl + `"routes": {`)
	at := func(format string, args ...any) string {
		return fmt.Sprintf("a.hujson:1:%d: error: ", col+1) + fmt.Sprintf(format, args...)
	}
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"tag", routes("tag:router"), nil},
		{"tag and node", routes("tag:router/office-router"), nil},
		{"user", routes("alice@example.com"), nil},
		{"user and node", routes("alice@example.com/office-router"), nil},
		{"bare node name", routes("office-router"), []string{
			at(`routes["office-router"]: a bare node name can be claimed by any member who picks that host name, so "office-router" approves no node (hint: key the approval by its owner: "tag:router/office-router" for a node carrying tag:router, or "alice@example.com/office-router" for alice@example.com's own node)`),
		}},
		{"bare node name, one tag and one user declared",
			`{"users": {"ops@example.com": {}}, "tagOwners": {"tag:gw": []}, "routes": {"gw-1": ["10.0.0.0/8"]}}`, []string{
				`a.hujson:1:76: error: routes["gw-1"]: a bare node name can be claimed by any member who picks that host name, so "gw-1" approves no node (hint: key the approval by its owner: "tag:gw/gw-1" for a node carrying tag:gw, or "ops@example.com/gw-1" for ops@example.com's own node)`,
			}},
		{"bare node name of a tagged auth key",
			`{"tagOwners": {"tag:gw": []}, "authKeys": {"gw-1": {"tags": ["tag:gw"], "secretHash": "` + hashA + `"}}, "routes": {"gw-1": ["10.0.0.0/8"]}}`, []string{
				`a.hujson:1:175: error: routes["gw-1"]: a bare node name can be claimed by any member who picks that host name, so "gw-1" approves no node (hint: key the approval by its owner: "tag:gw/gw-1" (auth key "gw-1" tags its nodes tag:gw))`,
			}},
		{"bare node name of a user's auth key",
			`{"users": {"ops@example.com": {}}, "authKeys": {"gw-1": {"user": "ops@example.com", "secretHash": "` + hashA + `"}}, "routes": {"gw-1": ["10.0.0.0/8"]}}`, []string{
				`a.hujson:1:187: error: routes["gw-1"]: a bare node name can be claimed by any member who picks that host name, so "gw-1" approves no node (hint: key the approval by its owner: "ops@example.com/gw-1" (auth key "gw-1" registers ops@example.com's nodes))`,
			}},
		{"undeclared user", routes("carol@example.com/office-router"), []string{
			at(`routes["carol@example.com/office-router"]: user "carol@example.com" is not in users (hint: add "carol@example.com" to users, or key the approval by a tag)`),
		}},
		{"user in another case", routes("Alice@Example.com"), []string{
			at(`routes["Alice@Example.com"]: user "Alice@Example.com" is not in users (hint: write "alice@example.com", as users declares it)`),
		}},
		{"not a login", routes("alice@/office-router"), []string{
			at(`routes["alice@/office-router"]: route owner "alice@" is not a login of the form name@domain (hint: write a login such as "alice@example.com")`),
		}},
		{"tag without tagOwners", routes("tag:gw/office-router"), []string{
			at(`routes["tag:gw/office-router"]: tag "tag:gw" has no tagOwners entry (hint: add "tag:gw": ["autogroup:admin"] to tagOwners)`),
		}},
		{"empty tag", routes("tag:/office-router"), []string{
			at(`routes["tag:/office-router"]: invalid tag "tag:": empty label`),
		}},
		{"empty node name", routes("tag:router/"), []string{
			at(`routes["tag:router/"]: route key "tag:router/" has an empty node name (hint: write "tag:router" to approve every node of tag:router, or add the node's MagicDNS name after the '/')`),
		}},
		{"invalid node name", routes("tag:router/my router"), []string{
			at(`routes["tag:router/my router"]: invalid node name "my router": label "my router" contains ' '; use letters, digits and '-' (hint: write the node's MagicDNS name (one DNS label, as "tailscale status" shows it) after the '/')`),
		}},
		{"node name with a dot", routes("tag:router/office-router.tail.example.com"), []string{
			at(`routes["tag:router/office-router.tail.example.com"]: node name "office-router.tail.example.com" is a full domain name (hint: write "tag:router/office-router": a node name is the first label of its MagicDNS name)`),
		}},
		{"node name in upper case", routes("alice@example.com/Office_Router"), []string{
			at(`routes["alice@example.com/Office_Router"]: node name "Office_Router" never matches: MagicDNS names are lowercase letters, digits and '-' (hint: write "alice@example.com/office-router")`),
		}},
		{"domain name in upper case", routes("tag:router/Office.tail.example.com"), []string{
			at(`routes["tag:router/Office.tail.example.com"]: node name "Office.tail.example.com" is a full domain name (hint: write "tag:router/office": a node name is the first label of its MagicDNS name)`),
		}},
		{"no owner", routes("/office-router"), []string{
			at(`routes["/office-router"]: route key "/office-router" has no owner (hint: write the owner before the '/': "tag:router/office-router" or "alice@example.com/office-router")`),
		}},
		{"group", routes("group:eng"), []string{
			at(`routes["group:eng"]: route owner "group:eng" is neither a tag nor a user login (hint: key routes by "tag:NAME", a login from users, or either followed by "/" and a node name; groups and autogroups approve routes through autoApprovers)`),
		}},
		{"autogroup and node", routes("autogroup:member/office-router"), []string{
			at(`routes["autogroup:member/office-router"]: route owner "autogroup:member" is neither a tag nor a user login (hint: key routes by "tag:NAME", a login from users, or either followed by "/" and a node name; groups and autogroups approve routes through autoApprovers)`),
		}},
		{"plain name and node", routes("router/office-router"), []string{
			at(`routes["router/office-router"]: route owner "router" is neither a tag nor a user login (hint: key routes by "tag:NAME", a login from users, or either followed by "/" and a node name; groups and autogroups approve routes through autoApprovers)`),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn, ds := LoadBytes(context.Background(), "a.hujson", []byte(tt.doc))
			if tn == nil {
				t.Fatalf("nil Tailnet; diagnostics:\n%v", ds)
			}
			if diff := cmp.Diff(tt.want, render(ds)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRouteKey(t *testing.T) {
	tests := []struct {
		key  string
		want RouteKey
		ok   bool
	}{
		{"tag:router", RouteKey{Owner: "tag:router"}, true},
		{"tag:router/office-router", RouteKey{Owner: "tag:router", Node: "office-router"}, true},
		{"alice@example.com", RouteKey{Owner: "alice@example.com"}, true},
		{"alice@example.com/office-router", RouteKey{Owner: "alice@example.com", Node: "office-router"}, true},
		{"office-router", RouteKey{Owner: "office-router"}, false},
		{"/office-router", RouteKey{Node: "office-router"}, false},
		{"tag:router/", RouteKey{Owner: "tag:router"}, false},
		{"tag:", RouteKey{Owner: "tag:"}, false},
		{"tag:a/b/c", RouteKey{Owner: "tag:a/b", Node: "c"}, false},
		{"group:eng/x", RouteKey{Owner: "group:eng", Node: "x"}, false},
		{"@example.com", RouteKey{Owner: "@example.com"}, false},
		{"", RouteKey{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseRouteKey(tt.key)
		if diff := cmp.Diff(tt.want, got); diff != "" || ok != tt.ok {
			t.Errorf("ParseRouteKey(%q) = %+v, %v; want %+v, %v", tt.key, got, ok, tt.want, tt.ok)
		}
		if ok && got.String() != tt.key {
			t.Errorf("ParseRouteKey(%q).String() = %q", tt.key, got.String())
		}
	}
}

// routeTestNode is a node as the route approval sees it.
type routeTestNode struct {
	name, user string
	tags       []string
}

var routeTestNodes = []routeTestNode{
	{"office-router", "", []string{"tag:router"}},
	{"office-router", "bob@example.com", nil}, // a member's laptop that took the name
	{"office-router", "alice@example.com", nil},
	{"edge", "", []string{"tag:router", "tag:exit"}},
	{"alice-mac", "alice@example.com", nil},
	{"tagged-by-alice", "alice@example.com", []string{"tag:exit"}}, // tags win over the user
	{"", "alice@example.com", nil},
}

var routeTestKeys = []string{
	"tag:router", "tag:router/office-router", "tag:exit", "tag:exit/edge",
	"alice@example.com", "alice@example.com/office-router", "bob@example.com/alice-mac",
	"office-router", "alice-mac", "/office-router", "tag:router/", "group:eng/edge",
}

func TestRouteKeyApproves(t *testing.T) {
	got := map[string][]string{}
	for _, key := range routeTestKeys {
		k, ok := ParseRouteKey(key)
		for _, n := range routeTestNodes {
			if ok && k.Approves(n.name, n.user, n.tags) {
				got[key] = append(got[key], fmt.Sprintf("%s(%s%v)", n.name, n.user, n.tags))
			}
		}
	}
	want := map[string][]string{
		"tag:router":                      {"office-router([tag:router])", "edge([tag:router tag:exit])"},
		"tag:router/office-router":        {"office-router([tag:router])"},
		"tag:exit":                        {"edge([tag:router tag:exit])", "tagged-by-alice(alice@example.com[tag:exit])"},
		"tag:exit/edge":                   {"edge([tag:router tag:exit])"},
		"alice@example.com":               {"office-router(alice@example.com[])", "alice-mac(alice@example.com[])", "(alice@example.com[])"},
		"alice@example.com/office-router": {"office-router(alice@example.com[])"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("approved nodes by key (-want +got):\n%s", diff)
	}
}

// TestRouteKeysForAgreesWithApproves checks that the lookup control does
// (RouteKeysFor) finds exactly the keys RouteKey.Approves accepts.
func TestRouteKeysForAgreesWithApproves(t *testing.T) {
	for _, n := range routeTestNodes {
		lookup := RouteKeysFor(n.name, n.user, n.tags)
		for _, key := range routeTestKeys {
			k, ok := ParseRouteKey(key)
			approves := ok && k.Approves(n.name, n.user, n.tags)
			if found := slices.Contains(lookup, key); found != approves {
				t.Errorf("node %+v, key %q: RouteKeysFor finds it: %v; Approves: %v", n, key, found, approves)
			}
		}
	}
}

// FuzzRouteKey checks that a key the loader accepts approves something,
// that a parsed key prints back as written, and that RouteKeysFor agrees
// with Approves for the node the key names.
func FuzzRouteKey(f *testing.F) {
	for _, k := range routeTestKeys {
		f.Add(k)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, key string) {
		k, ok := ParseRouteKey(key)
		if ok && k.String() != key {
			t.Errorf("ParseRouteKey(%q).String() = %q", key, k.String())
		}
		doc := `{"users": {"alice@example.com": {}}, "tagOwners": {"tag:router": []}, "routes": {` + strconv.Quote(key) + `: ["10.0.0.0/8"]}}`
		tn, ds := LoadBytes(ctx, "a.hujson", []byte(doc))
		if tn != nil && !ds.HasErrors() {
			if !ok {
				t.Errorf("the loader accepts %q, which ParseRouteKey says approves nothing", key)
			}
			if k.Node != "" && !k.Approves(k.Node, k.Owner, []string{k.Owner}) && !k.Approves(k.Node, k.Owner, nil) {
				t.Errorf("accepted key %q approves no node of its owner named %q", key, k.Node)
			}
		}
		if !ok {
			return
		}
		for _, n := range []routeTestNode{{k.Node, k.Owner, nil}, {k.Node, "", []string{k.Owner}}, {"other", k.Owner, nil}} {
			found := slices.Contains(RouteKeysFor(n.name, n.user, n.tags), key)
			if found != k.Approves(n.name, n.user, n.tags) {
				t.Errorf("key %q, node %+v: RouteKeysFor finds it: %v; Approves disagrees", key, n, found)
			}
		}
	})
}
