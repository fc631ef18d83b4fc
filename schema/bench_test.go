package schema

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// realisticRepo builds a config repository the size of a mid-sized
// company: 300 users, 40 groups, 30 tags, 300 ACLs, 100 grants, 20 auth
// keys and 100 DNS records over four files, one of them CUE.
func realisticRepo() fstest.MapFS {
	var users, groups, tags, acls, grants, keys, records, cueUsers strings.Builder
	for i := range 300 {
		if i%3 == 0 {
			fmt.Fprintf(&cueUsers, "users: \"user%d@example.com\": {name: \"User %d\", role: \"member\"}\n", i, i)
			continue
		}
		fmt.Fprintf(&users, "\t\t\"user%d@example.com\": {\"name\": \"User %d\", \"role\": \"member\"},\n", i, i)
	}
	for g := range 40 {
		fmt.Fprintf(&groups, "\t\t\"group:team%d\": [", g)
		for i := g; i < 300; i += 40 {
			fmt.Fprintf(&groups, "\"user%d@example.com\", ", i)
		}
		groups.WriteString("],\n")
	}
	for t := range 30 {
		fmt.Fprintf(&tags, "\t\t\"tag:svc%d\": [\"group:team%d\"],\n", t, t)
	}
	for a := range 300 {
		fmt.Fprintf(&acls, "\t\t{\"action\": \"accept\", \"src\": [\"group:team%d\"], \"dst\": [\"tag:svc%d:443\", \"tag:svc%d:22,80\"]},\n", a%40, a%30, (a+1)%30)
	}
	for g := range 100 {
		fmt.Fprintf(&grants, "\t\t{\"src\": [\"group:team%d\"], \"dst\": [\"tag:svc%d\"], \"ip\": [\"tcp:5432\"]},\n", g%40, g%30)
	}
	for k := range 20 {
		fmt.Fprintf(&keys, "\t\t\"ci%d\": {\"tags\": [\"tag:svc%d\"], \"reusable\": true, \"secretHash\": \"%s%02d\"},\n", k, k, hashA[:len(hashA)-2], k)
	}
	for r := range 100 {
		fmt.Fprintf(&records, "\t\t\t{\"name\": \"host%d.tail.example.com\", \"type\": \"A\", \"value\": \"100.64.1.%d\"},\n", r, r)
	}
	return mapFS(
		"tailnet.hujson", "{\n\t\"tailnet\": {\"name\": \"Example\", \"domain\": \"tail.example.com\"},\n\t\"dns\": {\"records\": [\n"+records.String()+"\t\t]},\n\t\"users\": {\n"+users.String()+"\t},\n}\n",
		"policy/acls.hujson", "{\n\t\"groups\": {\n"+groups.String()+"\t},\n\t\"tagOwners\": {\n"+tags.String()+"\t},\n\t\"acls\": [\n"+acls.String()+"\t],\n\t\"grants\": [\n"+grants.String()+"\t],\n}\n",
		"keys.hujson", "{\n\t\"authKeys\": {\n"+keys.String()+"\t},\n}\n",
		"users.cue", "package tailnet\n\n"+cueUsers.String(),
	)
}

func TestRealisticRepoIsClean(t *testing.T) {
	tn, ds := Load(context.Background(), realisticRepo(), ".")
	if len(ds) > 0 || tn == nil {
		t.Fatalf("diagnostics:\n%v", ds)
	}
	if len(tn.Users) != 300 || len(tn.Policy.ACLs) != 300 || len(tn.DNS.Records) != 100 {
		t.Errorf("users %d, acls %d, records %d", len(tn.Users), len(tn.Policy.ACLs), len(tn.DNS.Records))
	}
}

func BenchmarkLoad(b *testing.B) {
	fsys := realisticRepo()
	ctx := context.Background()
	Load(ctx, fsys, ".") // compile the schema outside the timed loop
	b.ReportAllocs()
	for b.Loop() {
		if _, ds := Load(ctx, fsys, "."); len(ds) > 0 {
			b.Fatal(ds)
		}
	}
}
