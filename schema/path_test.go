package schema

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPathKeyIndex(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{PathKey("", "acls"), "acls"},
		{PathIndex(PathIndex(PathKey("", "acls"), 3), 0), "acls[3][0]"},
		{PathIndex(PathKey(PathIndex("acls", 3), "dst"), 0), "acls[3].dst[0]"},
		{PathIndex(PathKey("groups", "group:eng"), 1), `groups["group:eng"][1]`},
		{PathKey(PathKey("users", "alice@example.com"), "role"), `users["alice@example.com"].role`},
		{PathKey("", "odd key"), `["odd key"]`},
		{PathKey("hosts", ""), `hosts[""]`},
		{PathKey("hosts", `a"b`), `hosts["a\"b"]`},
		{PathKey("routes", "router_1"), "routes.router_1"},
		{PathKey("routes", "my-router"), `routes["my-router"]`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

// TestSourcePositions checks that every object key, array element and
// scalar of a document gets a position, and that unknown paths fall back to
// their nearest known parent.
func TestSourcePositions(t *testing.T) {
	doc := "{\n" +
		"  \"groups\": {\n" +
		"    \"group:eng\": [\"alice@example.com\",\n" +
		"                  \"bob@example.com\"],\n" +
		"  },\n" +
		"  \"acls\": [\n" +
		"    {\"action\": \"accept\", \"src\": [\"group:eng\"], \"dst\": [\"*:22\"]},\n" +
		"  ],\n" +
		"  \"users\": {\"alice@example.com\": {\"role\": \"owner\"}, \"bob@example.com\": {}},\n" +
		"}\n"
	tn, ds := LoadBytes(context.Background(), "p.hujson", []byte(doc))
	if len(ds) > 0 {
		t.Fatalf("diagnostics: %v", ds)
	}
	tests := []struct {
		path string
		want string
	}{
		{"groups", "p.hujson:2:3"},
		{`groups["group:eng"]`, "p.hujson:3:5"},
		{`groups["group:eng"][0]`, "p.hujson:3:19"},
		{`groups["group:eng"][1]`, "p.hujson:4:19"},
		{"acls", "p.hujson:6:3"},
		{"acls[0]", "p.hujson:7:5"},
		{"acls[0].action", "p.hujson:7:6"},
		{"acls[0].src[0]", "p.hujson:7:34"},
		{"acls[0].dst", "p.hujson:7:48"},
		{"acls[0].dst[0]", "p.hujson:7:56"},
		{"acls[0].dst[0].port", "p.hujson:7:56"}, // below a scalar: the scalar
		{"acls[7]", "p.hujson:6:3"},              // beyond the list: the list
		{`users["alice@example.com"].role`, "p.hujson:9:35"},
		{`users["bob@example.com"].role`, "p.hujson:9:53"}, // absent: the user
		{"nope", "-"},
	}
	for _, tt := range tests {
		if got := tn.Source.Pos(tt.path).String(); got != tt.want {
			t.Errorf("Pos(%s) = %s, want %s", tt.path, got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want string // duration, or "error"
	}{
		{"0", "0s"},
		{"180d", "4320h0m0s"},
		{"1h30m", "1h30m0s"},
		{"45s", "45s"},
		{"1d12h", "36h0m0s"},
		{"", "error"},
		{"10", "error"},
		{"1w", "error"},
		{"h", "error"},
		{"-1h", "error"},
		{"1.5h", "error"},
		{"99999999999999999999d", "error"},
		{"106752d", "error"},
	}
	for _, tt := range tests {
		d, err := ParseDuration(tt.in)
		got := d.String()
		if err != nil {
			got = "error"
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseDuration(%q): %s", tt.in, diff)
		}
	}
}
