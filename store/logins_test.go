package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var loginT0 = time.UnixMilli(1_700_000_000_000).UTC()

func testLogin(id, group string, started time.Time) PendingLogin {
	return PendingLogin{ID: id, TokenHash: "hash-" + id, Machine: "mkey:" + group, Bound: "nodekey:" + id, Group: group,
		Device: "laptop (linux)", Started: started, Expires: started.Add(10 * time.Minute), State: LoginOpen}
}

// TestPendingLogins: a login is stored as given and found by its ID and
// its token hash from another handle (another replica); the group's cap
// cancels the oldest or refuses; it ends once; expired logins are not
// open and are pruned.
func TestPendingLogins(t *testing.T) { eachDB(t, testPendingLogins) }

func testPendingLogins(t *testing.T, db testDB) {
	ctx := context.Background()
	a, b := db.open(t), db.open(t)
	now := loginT0
	var want []PendingLogin
	for i := range 3 {
		l := testLogin(fmt.Sprintf("L%d", i), "m1", now.Add(time.Duration(i)*time.Second))
		if canceled, err := a.OpenLogin(ctx, l, LoginLimit{Max: 3, Replace: true}, now); err != nil || canceled != nil {
			t.Fatalf("OpenLogin %s: canceled %v, %v", l.ID, canceled, err)
		}
		want = append(want, l)
	}
	if got, err := b.LoginByToken(ctx, "hash-L1"); err != nil || !cmp.Equal(want[1], got) {
		t.Errorf("LoginByToken from another handle: %v (-want +got):\n%s", err, cmp.Diff(want[1], got))
	}
	if _, err := b.LoginByID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoginByID of none: %v, want ErrNotFound", err)
	}
	if _, err := a.OpenLogin(ctx, testLogin("L1", "m2", now), LoginLimit{}, now); !errors.Is(err, ErrConflict) {
		t.Errorf("a taken ID: %v, want ErrConflict", err)
	}
	// A fourth login of m1 cancels the oldest.
	fourth := testLogin("L3", "m1", now.Add(3*time.Second))
	canceled, err := b.OpenLogin(ctx, fourth, LoginLimit{Max: 3, Replace: true}, now)
	if err != nil || !cmp.Equal(canceled, []string{"L0"}) {
		t.Errorf("the fourth login canceled %v (%v), want [L0]", canceled, err)
	}
	open, err := a.OpenLogins(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append(want[1:], fourth), open); diff != "" {
		t.Errorf("open logins (-want +got):\n%s", diff)
	}
	// A limit that refuses.
	check := testLogin("C0", "dst", now)
	if _, err := a.OpenLogin(ctx, check, LoginLimit{Max: 1}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := a.OpenLogin(ctx, testLogin("C1", "dst", now), LoginLimit{Max: 1}, now); !errors.Is(err, ErrLoginLimit) {
		t.Errorf("past a refusing limit: %v, want ErrLoginLimit", err)
	}
	// It ends once: of two handles finishing it at once one does.
	results := make([]bool, 2)
	errs := race([]*Store{a, b}, func(i int, s *Store) error {
		_, ok, err := s.FinishLogin(ctx, "L1", LoginDone, fmt.Sprintf("user%d@example.com", i), "oidc", now)
		results[i] = ok
		return err
	})
	if errs[0] != nil || errs[1] != nil || results[0] == results[1] {
		t.Fatalf("two finishes at once: ended %v, errors %v; want exactly one", results, errs)
	}
	done, _ := a.LoginByID(ctx, "L1")
	if done.State != LoginDone || done.ResultVia != "oidc" || done.ResultUser == "" {
		t.Errorf("finished login reads %+v", done)
	}
	if before, ok, err := a.FinishLogin(ctx, "L0", LoginDone, "u@example.com", "admin", now); ok || err != nil || before.State != LoginCanceled {
		t.Errorf("finishing a canceled login: ended %v, %v, state %q", ok, err, before.State)
	}
	if _, ok, err := a.FinishLogin(ctx, "L2", LoginDone, "u@example.com", "admin", want[2].Expires); ok || err != nil {
		t.Errorf("finishing an expired login: ended %v, %v", ok, err)
	}
	if _, ok, err := a.FinishLogin(ctx, "L2", LoginCanceled, "", "", want[2].Expires); !ok || err != nil {
		t.Errorf("canceling an expired login: ended %v, %v", ok, err)
	}
	if _, _, err := a.FinishLogin(ctx, "nope", LoginCanceled, "", "", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("finishing no login: %v, want ErrNotFound", err)
	}
	// Expired logins are not open; pruning forgets them and their flows.
	later := now.Add(11 * time.Minute)
	if open, err := a.OpenLogins(ctx, later); err != nil || len(open) != 0 {
		t.Errorf("open after expiry: %v, %v", open, err)
	}
	if err := a.AddLoginFlow(ctx, LoginFlow{StateHash: "s1", Login: "L3", Provider: "p", Expires: fourth.Expires}); err != nil {
		t.Fatal(err)
	}
	if err := b.PruneLogins(ctx, later, later); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"L0", "L1", "L2", "L3", "C0"} {
		if _, err := a.LoginByID(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("login %s after pruning: %v, want ErrNotFound", id, err)
		}
	}
	if _, err := a.TakeLoginFlow(ctx, "s1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("flow after pruning: %v, want ErrNotFound", err)
	}
}

// TestLoginFlows: a flow is taken once, whichever handle asks first;

// TestLoginsOfOneMillisecond: logins opened within one millisecond keep
// the order they were opened in, so the cap cancels the oldest (their IDs
// sort the other way).
func TestLoginsOfOneMillisecond(t *testing.T) { eachDB(t, testLoginsOfOneMillisecond) }

func testLoginsOfOneMillisecond(t *testing.T, db testDB) {
	ctx := context.Background()
	st := db.open(t)
	var canceled []string
	for _, id := range []string{"Z", "Y", "X", "W", "V"} {
		c, err := st.OpenLogin(ctx, testLogin(id, "m1", loginT0), LoginLimit{Max: 3, Replace: true}, loginT0)
		if err != nil {
			t.Fatalf("OpenLogin %s: %v", id, err)
		}
		canceled = append(canceled, c...)
	}
	if diff := cmp.Diff([]string{"Z", "Y"}, canceled); diff != "" {
		t.Errorf("canceled logins (-want +got):\n%s", diff)
	}
	open, err := st.OpenLogins(ctx, loginT0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range open {
		ids = append(ids, l.ID)
	}
	if diff := cmp.Diff([]string{"X", "W", "V"}, ids); diff != "" {
		t.Errorf("open logins, oldest first (-want +got):\n%s", diff)
	}
}

// forgetting a login forgets its flows.
func TestLoginFlows(t *testing.T) { eachDB(t, testLoginFlows) }

func testLoginFlows(t *testing.T, db testDB) {
	ctx := context.Background()
	a, b := db.open(t), db.open(t)
	l := testLogin("L0", "m", loginT0)
	if _, err := a.OpenLogin(ctx, l, LoginLimit{}, loginT0); err != nil {
		t.Fatal(err)
	}
	f := LoginFlow{StateHash: "state-hash", Login: "L0", Provider: "issuer client", Expires: l.Expires}
	if err := a.AddLoginFlow(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := b.AddLoginFlow(ctx, f); !errors.Is(err, ErrConflict) {
		t.Errorf("a state hash twice: %v, want ErrConflict", err)
	}
	got := make([]LoginFlow, 2)
	errs := race([]*Store{a, b}, func(i int, s *Store) error {
		var err error
		got[i], err = s.TakeLoginFlow(ctx, "state-hash")
		return err
	})
	var taken int
	for i, err := range errs {
		switch {
		case err == nil:
			taken++
			if diff := cmp.Diff(f, got[i]); diff != "" {
				t.Errorf("taken flow (-want +got):\n%s", diff)
			}
		case !errors.Is(err, ErrNotFound):
			t.Errorf("taking a flow: %v", err)
		}
	}
	if taken != 1 {
		t.Errorf("the flow was taken %d times, want once", taken)
	}
	if err := a.AddLoginFlow(ctx, LoginFlow{StateHash: "second", Login: "L0", Provider: "p", Expires: l.Expires}); err != nil {
		t.Fatal(err)
	}
	if err := b.ForgetLogin(ctx, "L0"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.TakeLoginFlow(ctx, "second"); !errors.Is(err, ErrNotFound) {
		t.Errorf("flow of a forgotten login: %v, want ErrNotFound", err)
	}
	if _, err := a.LoginByID(ctx, "L0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("forgotten login: %v, want ErrNotFound", err)
	}
}

// TestLoginNotifies: ending a login notifies the other replicas with its
// ID; a login that was ended already notifies nobody.
func TestLoginNotifies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := newPostgresDB(t)
	a, b := db.open(t), db.open(t)
	lb, err := b.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	for _, id := range []string{"L0", "L1"} {
		if _, err := a.OpenLogin(ctx, testLogin(id, "m", loginT0), LoginLimit{Max: 1, Replace: true}, loginT0); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := a.FinishLogin(ctx, "L0", LoginDone, "u@example.com", "admin", loginT0); err != nil { // canceled already
		t.Fatal(err)
	}
	if _, _, err := a.FinishLogin(ctx, "L1", LoginDone, "u@example.com", "admin", loginT0); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"L0", "L1"} { // L0 canceled by L1's start, then L1 completed
		n, err := lb.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := (Notification{NotifyLogin, a.ReplicaID(), id}); n != want {
			t.Errorf("notification %+v, want %+v", n, want)
		}
	}
}

// TestSSHChecksPassed: the latest check per node and user is kept; old
// ones are forgotten.
func TestSSHChecksPassed(t *testing.T) { eachDB(t, testSSHChecksPassed) }

func testSSHChecksPassed(t *testing.T, db testDB) {
	ctx := context.Background()
	a, b := db.open(t), db.open(t)
	if _, ok, err := b.SSHCheckPassed(ctx, 7, "alice@example.com"); ok || err != nil {
		t.Errorf("no check passed: %v, %v", ok, err)
	}
	for _, at := range []time.Time{loginT0, loginT0.Add(time.Minute)} {
		if err := a.PassSSHCheck(ctx, 7, "alice@example.com", at, at.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if at, ok, err := b.SSHCheckPassed(ctx, 7, "alice@example.com"); !ok || err != nil || !at.Equal(loginT0.Add(time.Minute)) {
		t.Errorf("passed check: %v, %v, %v; want the latest", at, ok, err)
	}
	if _, ok, _ := b.SSHCheckPassed(ctx, 7, "bob@example.com"); ok {
		t.Error("bob's check passed by alice")
	}
	late := loginT0.Add(48 * time.Hour)
	if err := a.PassSSHCheck(ctx, 8, "bob@example.com", late, late.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.SSHCheckPassed(ctx, 7, "alice@example.com"); ok {
		t.Error("a check older than the forget time is kept")
	}
}
