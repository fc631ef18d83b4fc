package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/tailplane/tailplane/schema"
)

// bigTailnet is sampleTailnet plus n users, n auth keys (one per user) and
// n/10 groups. Different variants change about a tenth of the users' roles
// and auth keys, and rotate which users exist.
func bigTailnet(n, variant int) *schema.Tailnet {
	t := sampleTailnet()
	for i := range n {
		login := fmt.Sprintf("user%04d@example.com", i+variant*(n/20))
		role := schema.RoleMember
		if (i+variant)%10 == 0 {
			role = schema.RoleAdmin
		}
		t.Users[login] = schema.User{Login: login, Name: fmt.Sprintf("User %d", i), Role: role}
		t.AuthKeys[fmt.Sprintf("key%04d", i)] = schema.AuthKey{
			Name: fmt.Sprintf("key%04d", i), User: login, Reusable: (i+variant)%10 == 0,
			Preauthorized: true, SecretHash: hash(byte(i + variant)),
		}
		group := fmt.Sprintf("group:team%03d", i/10)
		t.Policy.Groups[group] = append(t.Policy.Groups[group], login)
	}
	for i := range n / 10 {
		t.Routes[fmt.Sprintf("tag:router/router%03d", i)] = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)}
	}
	return t
}

// BenchmarkDiff measures Desired and Diff between two 1k-user tailnets.
func BenchmarkDiff(b *testing.B) {
	t0, t1 := bigTailnet(1000, 0), bigTailnet(1000, 1)
	applied := Desired(t0)
	b.ResetTimer()
	for b.Loop() {
		p := Diff(applied, Desired(t1))
		if p.Empty() {
			b.Fatal("empty plan")
		}
	}
}

// BenchmarkApply measures applying alternately two 1k-user tailnets to a
// real SQLite file: read state, diff, write the changes, record a revision.
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	st, _ := openStore(b)
	ts := []*schema.Tailnet{bigTailnet(1000, 0), bigTailnet(1000, 1)}
	if _, err := Apply(ctx, st, ts[0], Revision{Commit: "c0"}); err != nil {
		b.Fatal(err)
	}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		p, err := Apply(ctx, st, ts[i%2], Revision{Commit: fmt.Sprint("c", i)})
		if err != nil {
			b.Fatal(err)
		}
		if p.Empty() {
			b.Fatal("empty plan")
		}
	}
}

// BenchmarkApplyFromEmpty measures the first apply of a 1k-user tailnet.
func BenchmarkApplyFromEmpty(b *testing.B) {
	ctx := context.Background()
	t := bigTailnet(1000, 0)
	for b.Loop() {
		b.StopTimer()
		st, _ := openStore(b)
		b.StartTimer()
		if _, err := Apply(ctx, st, t, Revision{Commit: "c0"}); err != nil {
			b.Fatal(err)
		}
	}
}
