package reconcile

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func obj(k Kind, name, value string) Object {
	return Object{Kind: k, Name: name, Value: json.RawMessage(value)}
}

func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name             string
		applied, desired []Object
		want             []Change
	}{
		{
			name: "both empty",
			want: []Change{},
		},
		{
			name:    "create from empty",
			desired: []Object{obj(KindUser, "a@x", `{"name":"A","role":""}`)},
			want:    []Change{{Action: ActionCreate, Kind: KindUser, Name: "a@x", After: raw(`{"name":"A","role":""}`)}},
		},
		{
			name:    "delete to empty",
			applied: []Object{obj(KindUser, "a@x", `{"name":"A","role":""}`)},
			want:    []Change{{Action: ActionDelete, Kind: KindUser, Name: "a@x", Before: raw(`{"name":"A","role":""}`)}},
		},
		{
			name:    "unchanged",
			applied: []Object{obj(KindUser, "a@x", `{"name":"A"}`)},
			desired: []Object{obj(KindUser, "a@x", `{"name":"A"}`)},
			want:    []Change{},
		},
		{
			name:    "field update",
			applied: []Object{obj(KindAuthKey, "ci", `{"reusable":false,"uses":1}`)},
			desired: []Object{obj(KindAuthKey, "ci", `{"reusable":true,"uses":1}`)},
			want: []Change{{
				Action: ActionUpdate, Kind: KindAuthKey, Name: "ci",
				Before: raw(`{"reusable":false,"uses":1}`), After: raw(`{"reusable":true,"uses":1}`),
				Fields: []FieldChange{{Path: "reusable", Before: raw(`false`), After: raw(`true`)}},
			}},
		},
		{
			name: "plan order: kind rank, then name, mixed actions",
			applied: []Object{
				obj(KindPolicy, "acls", `[]`),
				obj(KindUser, "b@x", `{}`),
				obj(KindTailnet, "settings", `{"name":"a"}`),
			},
			desired: []Object{
				obj(KindUser, "c@x", `{}`),
				obj(KindTailnet, "settings", `{"name":"b"}`),
				obj(KindUser, "a@x", `{}`),
			},
			want: []Change{
				{Action: ActionUpdate, Kind: KindTailnet, Name: "settings", Before: raw(`{"name":"a"}`), After: raw(`{"name":"b"}`),
					Fields: []FieldChange{{Path: "name", Before: raw(`"a"`), After: raw(`"b"`)}}},
				{Action: ActionCreate, Kind: KindUser, Name: "a@x", After: raw(`{}`)},
				{Action: ActionDelete, Kind: KindUser, Name: "b@x", Before: raw(`{}`)},
				{Action: ActionCreate, Kind: KindUser, Name: "c@x", After: raw(`{}`)},
				{Action: ActionDelete, Kind: KindPolicy, Name: "acls", Before: raw(`[]`)},
			},
		},
		{
			name:    "duplicates count once",
			desired: []Object{obj(KindUser, "a@x", `{"n":1}`), obj(KindUser, "a@x", `{"n":2}`)},
			want:    []Change{{Action: ActionCreate, Kind: KindUser, Name: "a@x", After: raw(`{"n":1}`)}},
		},
		{
			name:    "unknown applied kind is deleted last",
			applied: []Object{obj("future", "x", `1`), obj(KindUser, "a@x", `{}`)},
			desired: []Object{obj(KindUser, "a@x", `{}`)},
			want:    []Change{{Action: ActionDelete, Kind: "future", Name: "x", Before: raw(`1`)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.applied, tt.desired)
			if diff := cmp.Diff(tt.want, got.Changes); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffValues(t *testing.T) {
	tests := []struct {
		name          string
		before, after string
		want          []FieldChange
	}{
		{
			name:   "scalar",
			before: `"10.0.0.5"`, after: `"10.0.0.6"`,
			want: []FieldChange{{Before: raw(`"10.0.0.5"`), After: raw(`"10.0.0.6"`)}},
		},
		{
			name:   "fields changed, added and removed",
			before: `{"a":1,"b":2,"c":3}`, after: `{"a":1,"b":5,"d":4}`,
			want: []FieldChange{
				{Path: "b", Before: raw(`2`), After: raw(`5`)},
				{Path: "d", After: raw(`4`)},
				{Path: "c", Before: raw(`3`)}, // removed fields come last
			},
		},
		{
			name:   "nested keys quoted when not identifiers",
			before: `{"routes":{"10.0.0.0/8":["tag:a"]}}`, after: `{"routes":{"10.0.0.0/8":["tag:b"]}}`,
			want: []FieldChange{{Path: `routes["10.0.0.0/8"]`, Before: raw(`["tag:a"]`), After: raw(`["tag:b"]`)}},
		},
		{
			name:   "nested scalar list changes whole",
			before: `{"tags":["tag:a"]}`, after: `{"tags":["tag:a","tag:b"]}`,
			want: []FieldChange{{Path: "tags", Before: raw(`["tag:a"]`), After: raw(`["tag:a","tag:b"]`)}},
		},
		{
			name:   "top-level list by element",
			before: `["a","b","c"]`, after: `["a","c","d"]`,
			want: []FieldChange{
				{Path: "[1]", Before: raw(`"b"`), Element: true},
				{Path: "[2]", After: raw(`"d"`), Element: true},
			},
		},
		{
			name:   "list of objects: edited entry is removed and inserted",
			before: `[{"x":1},{"x":2},{"x":3}]`, after: `[{"x":1},{"x":9},{"x":3}]`,
			want: []FieldChange{
				{Path: "[1]", Before: raw(`{"x":2}`), Element: true},
				{Path: "[1]", After: raw(`{"x":9}`), Element: true},
			},
		},
		{
			name:   "insert at front shifts nothing else",
			before: `[{"x":1},{"x":2}]`, after: `[{"x":0},{"x":1},{"x":2}]`,
			want: []FieldChange{{Path: "[0]", After: raw(`{"x":0}`), Element: true}},
		},
		{
			name:   "type change",
			before: `{"a":[1]}`, after: `{"a":{"b":1}}`,
			want: []FieldChange{{Path: "a", Before: raw(`[1]`), After: raw(`{"b":1}`)}},
		},
		{
			name:   "large numbers keep their text",
			before: `{"n":12345678901234567890}`, after: `{"n":12345678901234567891}`,
			want: []FieldChange{{Path: "n", Before: raw(`12345678901234567890`), After: raw(`12345678901234567891`)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffValues(raw(tt.before), raw(tt.after))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("diffValues (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDiffListFallback checks that lists too long for LCS still give a
// correct (if coarse) diff.
func TestDiffListFallback(t *testing.T) {
	var a, b []json.RawMessage
	for i := range 2100 {
		a = append(a, json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
		b = append(b, json.RawMessage(fmt.Sprintf(`{"i":%d}`, i+1)))
	}
	var out []FieldChange
	diffList("", a, b, &out)
	if len(out) == 0 {
		t.Fatal("no changes reported for different lists")
	}
	removed, inserted := 0, 0
	for _, f := range out {
		if f.Before != nil {
			removed++
		} else {
			inserted++
		}
	}
	// Element 0 is removed and 2100 inserted; the rest is common and
	// either matched (LCS) or replaced wholesale (fallback).
	if removed != inserted || removed < 1 {
		t.Errorf("removed %d, inserted %d; want equal and positive", removed, inserted)
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		p    *Plan
		want string
	}{
		{"nil", nil, "No changes."},
		{"empty", &Plan{}, "No changes."},
		{"mixed", &Plan{Changes: []Change{{Action: ActionCreate}, {Action: ActionDelete}, {Action: ActionDelete}}}, "Plan: 1 to add, 0 to change, 2 to destroy."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Summary(); got != tt.want {
				t.Errorf("Summary() = %q, want %q", got, tt.want)
			}
		})
	}
}
