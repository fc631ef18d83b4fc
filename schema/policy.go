package schema

import "encoding/json"

// Policy holds Tailscale's policy-file keys, with the JSON names Tailscale
// documents. Values are kept in Tailscale's own string syntax ("tag:web:443",
// "group:eng"); the policy package parses and validates them.
type Policy struct {
	ACLs          []ACL               `json:"acls,omitempty"`
	Grants        []Grant             `json:"grants,omitempty"`
	Groups        map[string][]string `json:"groups,omitempty"`
	Hosts         map[string]string   `json:"hosts,omitempty"`
	TagOwners     map[string][]string `json:"tagOwners,omitempty"`
	AutoApprovers AutoApprovers       `json:"autoApprovers,omitzero"`
	SSH           []SSHRule           `json:"ssh,omitempty"`
	NodeAttrs     []NodeAttr          `json:"nodeAttrs,omitempty"`
	Tests         []ACLTest           `json:"tests,omitempty"`
	SSHTests      []SSHTest           `json:"sshTests,omitempty"`
	IPSets        map[string][]string `json:"ipsets,omitempty"`
	Postures      map[string][]string `json:"postures,omitempty"`

	RandomizeClientPort bool   `json:"randomizeClientPort,omitempty"`
	DisableIPv4         bool   `json:"disableIPv4,omitempty"`
	OneCGNATRoute       string `json:"OneCGNATRoute,omitempty"`

	// DERPMap is Tailscale's `derpMap` key, kept raw.
	DERPMap json.RawMessage `json:"derpMap,omitempty"`
}

// ACL is one entry of `acls`. Users and Ports are the legacy spellings of Src and Dst.
type ACL struct {
	Action     string   `json:"action"`
	Proto      string   `json:"proto,omitempty"`
	Src        []string `json:"src,omitempty"`
	Dst        []string `json:"dst,omitempty"`
	Users      []string `json:"users,omitempty"`
	Ports      []string `json:"ports,omitempty"`
	SrcPosture []string `json:"srcPosture,omitempty"`
}

// Grant is one entry of `grants`.
type Grant struct {
	Src        []string                     `json:"src"`
	Dst        []string                     `json:"dst"`
	IP         []string                     `json:"ip,omitempty"`
	App        map[string][]json.RawMessage `json:"app,omitempty"`
	Via        []string                     `json:"via,omitempty"`
	SrcPosture []string                     `json:"srcPosture,omitempty"`
}

// AutoApprovers is the `autoApprovers` key.
type AutoApprovers struct {
	Routes   map[string][]string `json:"routes,omitempty"`
	ExitNode []string            `json:"exitNode,omitempty"`
}

// SSHRule is one entry of `ssh`.
type SSHRule struct {
	Action          string   `json:"action"`
	Src             []string `json:"src"`
	Dst             []string `json:"dst"`
	Users           []string `json:"users"`
	CheckPeriod     string   `json:"checkPeriod,omitempty"`
	AcceptEnv       []string `json:"acceptEnv,omitempty"`
	Recorder        []string `json:"recorder,omitempty"`
	EnforceRecorder bool     `json:"enforceRecorder,omitempty"`
}

// NodeAttr is one entry of `nodeAttrs`.
type NodeAttr struct {
	Target []string                     `json:"target"`
	Attr   []string                     `json:"attr,omitempty"`
	App    map[string][]json.RawMessage `json:"app,omitempty"`
	IPPool []string                     `json:"ipPool,omitempty"`
}

// ACLTest is one entry of `tests`.
type ACLTest struct {
	Src        string         `json:"src"`
	SrcPosture map[string]any `json:"srcPostureAttrs,omitempty"` // posture attributes as key-value pairs ({"node:os": "windows"})
	Proto      string         `json:"proto,omitempty"`
	Accept     []string       `json:"accept,omitempty"`
	Deny       []string       `json:"deny,omitempty"`
}

// SSHTest is one entry of `sshTests`.
type SSHTest struct {
	Src    string   `json:"src"`
	Dst    []string `json:"dst"`
	Accept []string `json:"accept,omitempty"`
	Check  []string `json:"check,omitempty"`
	Deny   []string `json:"deny,omitempty"`
}
