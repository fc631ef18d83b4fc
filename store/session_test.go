package store

import (
	"context"
	"testing"
	"time"
)

// TestIdleTransactionEnds: a handle that stops in the middle of a write
// transaction, as the client of a replica whose host died does, holds the
// write lock only until PostgreSQL ends its idle session
// (IdleTransactionTimeout): another handle's write then goes through, the
// stopped transaction is rolled back, and its handle's commit fails.
func TestIdleTransactionEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := newPostgresDB(t)
	stopped, other := db.open(t), db.open(t)
	put := func(tx *Tx, name string) error {
		return tx.PutConfigObject(ctx, ConfigObject{Kind: "user", Name: name, Value: []byte(`{}`)})
	}
	inside, resume := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- stopped.Update(ctx, func(tx *Tx) error {
			if err := put(tx, "stopped"); err != nil {
				return err
			}
			close(inside)
			<-resume // the client is gone: nothing more reaches the database
			return put(tx, "stopped-2")
		})
	}()
	<-inside
	if err := other.Update(ctx, func(tx *Tx) error { return put(tx, "other") }); err != nil {
		t.Fatalf("a write while another handle's transaction sat idle: %v", err)
	}
	close(resume)
	if err := <-done; err == nil {
		t.Errorf("the idle transaction committed after its session was ended")
	}
	objs, err := other.ConfigObjects(ctx)
	if err != nil || len(objs) != 1 || objs[0].Name != "other" {
		t.Errorf("config objects %+v (%v); want only the other handle's", objs, err)
	}
}

// TestHeartbeatWithoutWriteLock: a replica renews its lease while another
// handle's write transaction holds the write lock, which then commits.
func TestHeartbeatWithoutWriteLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := newPostgresDB(t)
	holder, beating := db.open(t), db.open(t)
	inside, resume := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- holder.Update(ctx, func(tx *Tx) error {
			close(inside)
			<-resume
			return tx.PutConfigObject(ctx, ConfigObject{Kind: "user", Name: "holder", Value: []byte(`{}`)})
		})
	}()
	<-inside
	rs, err := beating.Heartbeat(ctx, Beat{Address: "b", TTL: time.Hour})
	if err != nil || len(rs) != 1 || !rs[0].Live {
		t.Errorf("a heartbeat while the write lock is held: %+v (%v); want its live lease", rs, err)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Errorf("the transaction holding the lock: %v; want it to commit (the heartbeat did not wait for it)", err)
	}
}
