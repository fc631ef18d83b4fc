package admin

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
)

// postedName is the file name positions in a posted policy carry.
const postedName = "policy.hujson"

// ownKeys are tailplane's own top-level keys, with how each is taken from
// the served tailnet when a posted policy does not declare it.
var ownKeys = []struct {
	key  string
	take func(dst, served *schema.Tailnet)
}{
	{"tailnet", func(d, s *schema.Tailnet) { d.Settings = s.Settings }},
	{"users", func(d, s *schema.Tailnet) { d.Users = s.Users }},
	{"dns", func(d, s *schema.Tailnet) { d.DNS = s.DNS }},
	{"routes", func(d, s *schema.Tailnet) { d.Routes = s.Routes }},
	{"authKeys", func(d, s *schema.Tailnet) { d.AuthKeys = s.AuthKeys }},
	{"apiKeys", func(d, s *schema.Tailnet) { d.APIKeys = s.APIKeys }},
	{"login", func(d, s *schema.Tailnet) { d.Login = s.Login }},
}

// validation is the outcome of validatePolicy.
type validation struct {
	Diagnostics schema.Diagnostics // errors and warnings, sorted
	posted      *schema.Tailnet    // the posted document; nil when it does not parse
}

// validatePolicy runs `tailplane lint`'s checks on body, one policy file
// (HuJSON), as if it were the config repository's policy: it is loaded
// as a file named policy.hujson (syntax, schema, references), tailplane's
// own keys it does not declare (users, tailnet, ...) are the served
// tailnet's, and the policy is then compiled and its tests and sshTests
// run, as lint runs them (policy.Validate on stand-in nodes).
func validatePolicy(ctx context.Context, served *schema.Tailnet, body []byte) validation {
	t, diags := schema.LoadBytes(ctx, postedName, body)
	v := validation{Diagnostics: diags, posted: t}
	if t != nil {
		merged := *t
		taken := map[string]bool{}
		for _, k := range ownKeys {
			if !t.Source.Pos(k.key).IsValid() { // not declared in the posted file
				k.take(&merged, served)
				taken[k.key] = true
			}
		}
		v.Diagnostics = append(v.Diagnostics, servedTagOwners(&merged, taken)...)
		_, pdiags := policy.Validate(&merged, nil)
		v.Diagnostics = append(v.Diagnostics, pdiags...)
	}
	v.Diagnostics.Sort()
	return v
}

// servedTagOwners is the loader's check that every tag an auth key gives
// and every tag owning routes has a tagOwners entry, for the auth keys and
// routes taken from the served tailnet (the loader checked those the
// posted file declares).
func servedTagOwners(t *schema.Tailnet, taken map[string]bool) schema.Diagnostics {
	var diags schema.Diagnostics
	missing := func(tag, path, user string) {
		if _, ok := t.Policy.TagOwners[tag]; !ok {
			diags = append(diags, schema.Diagnostic{Path: path,
				Message: fmt.Sprintf("tag %q has no tagOwners entry, but the served config's %s uses it", tag, user),
				Hint:    fmt.Sprintf(`add %q: ["autogroup:admin"] to tagOwners, or remove the tag from the config first`, tag)})
		}
	}
	if taken["authKeys"] {
		for _, name := range slices.Sorted(maps.Keys(t.AuthKeys)) {
			for i, tag := range t.AuthKeys[name].Tags {
				missing(tag, schema.PathIndex(schema.PathKey(schema.PathKey("authKeys", name), "tags"), i), fmt.Sprintf("auth key %q", name))
			}
		}
	}
	if taken["routes"] {
		for _, key := range slices.Sorted(maps.Keys(t.Routes)) {
			if owner, _, _ := strings.Cut(key, "/"); strings.HasPrefix(owner, "tag:") {
				missing(owner, schema.PathKey("routes", key), fmt.Sprintf("routes key %q", key))
			}
		}
	}
	return diags
}

// aclTestError is Tailscale's answer to a policy that does not validate
// (client/tailscale.ACLTestError): a message, and the problems grouped by
// the test source they concern ("user"; empty for the rest).
type aclTestError struct {
	Message string           `json:"message,omitempty"`
	Data    []aclTestFailure `json:"data,omitempty"`
}

type aclTestFailure struct {
	User     string   `json:"user,omitempty"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// oneLine escapes line breaks, which gitops-pusher's pattern for the
// message does not cross.
var oneLine = strings.NewReplacer("\r", `\r`, "\n", `\n`)

// testPathRE matches the path of a diagnostic inside tests[i] or sshTests[i].
var testPathRE = regexp.MustCompile(`^(tests|sshTests)\[(\d+)\]`)

// answer is v in Tailscale's shape: empty when the policy has no errors
// (warnings then stay out: gitops-pusher fails on any data), else the
// first error as the message, "line L, column C: ..." when it has a
// position in the posted file (gitops-pusher turns that into an
// annotation of the policy file), and every problem in data.
func (v validation) answer() aclTestError {
	errs := v.Diagnostics.Errors()
	if len(errs) == 0 {
		return aclTestError{}
	}
	var out aclTestError
	first := errs[0]
	out.Message = problemText(first)
	if first.Pos.File == postedName && first.Pos.Line > 0 {
		out.Message = fmt.Sprintf("line %d, column %d: %s", first.Pos.Line, first.Pos.Col, out.Message)
	}
	if n := len(errs) - 1; n > 0 {
		out.Message += fmt.Sprintf(" (and %d more %s)", n, plural(n, "problem", "problems"))
	}
	out.Message = oneLine.Replace(out.Message)
	groups := map[string]*aclTestFailure{}
	var order []string
	for _, d := range v.Diagnostics {
		user := v.testSource(d.Path)
		g := groups[user]
		if g == nil {
			g = &aclTestFailure{User: user}
			groups[user] = g
			order = append(order, user)
		}
		if d.Severity == schema.SevWarning {
			g.Warnings = append(g.Warnings, d.String())
		} else {
			g.Errors = append(g.Errors, d.String())
		}
	}
	for _, user := range order {
		out.Data = append(out.Data, *groups[user])
	}
	return out
}

// testSource is the src of the test or sshTest path is inside, or "".
func (v validation) testSource(path string) string {
	m := testPathRE.FindStringSubmatch(path)
	if m == nil || v.posted == nil {
		return ""
	}
	i, _ := strconv.Atoi(m[2])
	switch p := v.posted.Policy; {
	case m[1] == "tests" && i < len(p.Tests):
		return p.Tests[i].Src
	case m[1] == "sshTests" && i < len(p.SSHTests):
		return p.SSHTests[i].Src
	}
	return ""
}

// problemText is d without its position and severity: "path: message (hint: ...)".
func problemText(d schema.Diagnostic) string {
	return pipeline.Problem{Path: d.Path, Message: d.Message, Hint: d.Hint}.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
