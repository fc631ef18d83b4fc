package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Several tailplane replicas share one PostgreSQL database. What they
// share lives here, in SQL like the rest of the store:
//
//	ServerState(ctx, name, create)       one value per name, created once (every dialect)
//	ReplicaID()                          this handle's replica; "" on SQLite
//	Heartbeat(ctx, beat) / Replicas(ctx) the replicas' leases; the applier is the live one that started first
//	LeaveReplicas(ctx)                   this replica's lease removed, as it stops
//	WithApplierFence(ctx)                an Update in it fails with ErrNotApplier unless this replica is the applier
//	AppliedBy(ctx)                       which replica recorded the latest revision
//	Notify(ctx, kind, body) / Listen(ctx) LISTEN/NOTIFY on one channel
//
// Every Store handle on PostgreSQL is one replica, with a random ID made
// when it connects. Writes of nodes and revisions notify the other
// replicas in their own transaction (NotifyNode, NotifyRevision), so a
// notification is sent exactly when its change commits. The leases and
// notifications use PostgreSQL's own SQL (its clock, pg_notify), so they
// exist on PostgreSQL only; on SQLite there is one server and they return
// ErrSingleServer.

// ErrSingleServer is returned by the replica methods on SQLite.
var ErrSingleServer = errors.New("store: replicas need PostgreSQL (SQLite serves one server)")

// ErrNotApplier is returned by an Update under WithApplierFence when this
// replica is not the applier (any more).
var ErrNotApplier = errors.New("store: this replica is not the one applying revisions (another replica's lease is older)")

// ErrConflict is wrapped by SaveNode's (and RegisterNode's) error when
// another node has the same address, name or key: with replicas, another
// replica may have just registered it.
var ErrConflict = errors.New("another node has the same address, name or key")

// conflict returns err wrapping ErrConflict too when it is a unique
// index's refusal (PostgreSQL's SQLSTATE 23505, SQLite's UNIQUE
// constraint).
func conflict(err error) error {
	var pgErr *pgconn.PgError
	if (errors.As(err, &pgErr) && pgErr.Code == "23505") || strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return fmt.Errorf("%w (%w)", ErrConflict, err)
	}
	return err
}

// The notification kinds the store sends itself.
const (
	NotifyNode     = "node"     // body: the ID of a node inserted, updated or deleted
	NotifyRevision = "revision" // body: the ID of the revision recorded
	// NotifyPrimaries: the primary routers were saved (SetPrimaryRoutes);
	// body empty.
	NotifyPrimaries = "primaries"
)

// notifyChannel is the one LISTEN/NOTIFY channel of tailplane.
const notifyChannel = "tailplane"

// MaxNotifyBody is the largest body Notify sends: PostgreSQL's payload
// limit (8000 bytes) less room for the kind and the replica ID.
const MaxNotifyBody = 8000 - 100

// replicaConn is a PostgreSQL handle's replica ID and connection settings
// (for Listen's own connection).
type replicaConn struct {
	id  string
	cfg *pgx.ConnConfig
}

func newReplicaID() string {
	var b [6]byte
	rand.Read(b[:])
	return "r" + hex.EncodeToString(b[:])
}

// ReplicaID is the ID this handle has among the replicas; empty on SQLite.
func (s *Store) ReplicaID() string { return s.replica.id }

// ServerState returns the shared value called name, creating it with
// create when there is none yet. Of replicas creating it at the same
// moment one wins, and all get its value; created is true for that one.
func (s *Store) ServerState(ctx context.Context, name string, create func() (string, error)) (value string, created bool, err error) {
	v, ok, err := serverState(ctx, s.db, name)
	if err != nil || ok {
		return v, false, err
	}
	fresh, err := create()
	if err != nil {
		return "", false, err
	}
	err = s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO server_state (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, fresh); err != nil {
			return fmt.Errorf("store: saving server state %q: %w", name, err)
		}
		v, _, err = serverState(ctx, tx.tx, name)
		return err
	})
	return v, err == nil && v == fresh, err
}

// LookupServerState returns the shared value called name and whether
// there is one, without creating it.
func (s *Store) LookupServerState(ctx context.Context, name string) (string, bool, error) {
	return serverState(ctx, s.db, name)
}

func serverState(ctx context.Context, q querier, name string) (string, bool, error) {
	var v string
	err := q.QueryRowContext(ctx, `SELECT value FROM server_state WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: reading server state %q: %w", name, err)
	}
	return v, true, nil
}

// Replica is one replica's lease row.
type Replica struct {
	ID      string `json:"id"`
	Address string `json:"address"` // where it listens (replicas share one server URL)
	// Nodes is how many nodes had a map session with it at its last heartbeat.
	Nodes      int       `json:"nodes"`
	Started    time.Time `json:"started"`
	Renewed    time.Time `json:"renewed"`
	LeaseUntil time.Time `json:"leaseUntil"`
	Live       bool      `json:"live"`    // its lease has not lapsed
	Applier    bool      `json:"applier"` // it applies revisions: the live replica that started first
	// DERP is what the replica's relay told the others to mesh with it
	// (Beat.DERP); not part of the status.
	DERP string `json:"-"`
}

// Beat is what a replica reports at each heartbeat.
type Beat struct {
	Address string
	Nodes   int
	TTL     time.Duration // how long the lease holds without another beat
	DERP    string        // how the other relays mesh with this replica's (opaque); empty: no relay
}

// nowMillis is the database server's clock in milliseconds: replicas on
// different hosts compare leases by one clock.
const nowMillis = `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT`

// Heartbeat renews this replica's lease (making its row on the first
// beat), forgets replicas lapsed for long (an hour), and returns every
// replica's row, the applier first among the live ones. A replica renewing
// a lease that had lapsed (it was paused, or cut off from the database)
// starts anew, last in line: the one that took over applying revisions
// meanwhile keeps doing so. It does not wait for the write lock (see
// updateLeases).
func (s *Store) Heartbeat(ctx context.Context, b Beat) ([]Replica, error) {
	if s.replica.id == "" {
		return nil, ErrSingleServer
	}
	var out []Replica
	err := s.updateLeases(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO replicas (id, address, started_at, renewed_at, lease_until, nodes, derp)
			VALUES (?, ?, `+nowMillis+`, `+nowMillis+`, `+nowMillis+` + ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET address = excluded.address, renewed_at = excluded.renewed_at,
				started_at = CASE WHEN replicas.lease_until < excluded.renewed_at THEN excluded.started_at ELSE replicas.started_at END,
				lease_until = excluded.lease_until, nodes = excluded.nodes, derp = excluded.derp`,
			s.replica.id, b.Address, b.TTL.Milliseconds(), b.Nodes, b.DERP)
		if err != nil {
			return fmt.Errorf("store: renewing the lease of replica %s: %w", s.replica.id, err)
		}
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM replicas WHERE lease_until < `+nowMillis+` - 3600000`); err != nil {
			return fmt.Errorf("store: forgetting lapsed replicas: %w", err)
		}
		out, err = replicas(ctx, tx.tx)
		return err
	})
	return out, err
}

// LeaveReplicas removes this replica's lease row: a replica stopping
// cleanly is gone for the others at their next heartbeat, without waiting
// for its lease to lapse.
func (s *Store) LeaveReplicas(ctx context.Context) error {
	if s.replica.id == "" {
		return ErrSingleServer
	}
	return s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM replicas WHERE id = ?`, s.replica.id); err != nil {
			return fmt.Errorf("store: removing the lease of replica %s: %w", s.replica.id, err)
		}
		return nil
	})
}

// Replicas returns every replica's row, the applier first among the live ones.
func (s *Store) Replicas(ctx context.Context) ([]Replica, error) {
	if s.replica.id == "" {
		return nil, ErrSingleServer
	}
	return replicas(ctx, s.db)
}

func replicas(ctx context.Context, q querier) ([]Replica, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, address, nodes, started_at, renewed_at, lease_until, derp, `+nowMillis+`
		FROM replicas ORDER BY started_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: listing replicas: %w", err)
	}
	defer rows.Close()
	var out []Replica
	applier := false
	for rows.Next() {
		var r Replica
		var started, renewed, until, now int64
		if err := rows.Scan(&r.ID, &r.Address, &r.Nodes, &started, &renewed, &until, &r.DERP, &now); err != nil {
			return nil, fmt.Errorf("store: reading replicas: %w", err)
		}
		r.Started, r.Renewed, r.LeaseUntil = time.UnixMilli(started).UTC(), time.UnixMilli(renewed).UTC(), time.UnixMilli(until).UTC()
		r.Live = until >= now
		if r.Live && !applier {
			r.Applier, applier = true, true
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading replicas: %w", err)
	}
	return out, nil
}

type fenceKey struct{}

// WithApplierFence returns ctx marked so that every Update run with it
// first checks, under the write lock, that this replica is the applier,
// and fails with ErrNotApplier when it is not. A revision applied under
// the fence is applied by exactly one replica, even when leases change
// hands while it is being prepared. On SQLite it changes nothing.
func (s *Store) WithApplierFence(ctx context.Context) context.Context {
	if s.replica.id == "" {
		return ctx
	}
	return context.WithValue(ctx, fenceKey{}, s.replica.id)
}

func checkFence(ctx context.Context, tx *Tx) error {
	id, _ := ctx.Value(fenceKey{}).(string)
	if id == "" {
		return nil
	}
	var first string
	err := tx.tx.QueryRowContext(ctx, `SELECT id FROM replicas WHERE lease_until >= `+nowMillis+` ORDER BY started_at, id LIMIT 1`).Scan(&first)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: checking which replica applies revisions: %w", err)
	}
	if first != id {
		return ErrNotApplier
	}
	return nil
}

// appliedByName is the server_state row naming the replica that recorded
// the latest revision: "<revision ID> <replica ID>".
const appliedByName = "applied_by"

// AppliedBy returns the replica that recorded the latest revision, and
// that revision's ID; empty and 0 when none was recorded by a replica
// (SQLite, or a database from before replicas).
func (s *Store) AppliedBy(ctx context.Context) (revision int64, replica string, err error) {
	v, ok, err := serverState(ctx, s.db, appliedByName)
	if err != nil || !ok {
		return 0, "", err
	}
	rev, replica, _ := strings.Cut(v, " ")
	id, _ := strconv.ParseInt(rev, 10, 64)
	return id, replica, nil
}

// revisionRecorded notes, in tx, that this replica recorded revision id,
// and tells the other replicas.
func (tx *Tx) revisionRecorded(ctx context.Context, id int64) error {
	if tx.st.replica.id == "" {
		return nil
	}
	v := strconv.FormatInt(id, 10) + " " + tx.st.replica.id
	if _, err := tx.tx.ExecContext(ctx, `INSERT INTO server_state (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, appliedByName, v); err != nil {
		return fmt.Errorf("store: noting who applied revision %d: %w", id, err)
	}
	return tx.notify(ctx, NotifyRevision, strconv.FormatInt(id, 10))
}

// Notification is one message from another replica.
type Notification struct {
	Kind    string // NotifyNode, NotifyRevision, or a kind a caller of Notify chose
	Replica string // the sender's replica ID
	Body    string
}

// Notify sends a notification of kind (one word) with body (at most
// MaxNotifyBody bytes) to the other replicas' listeners, at once.
func (s *Store) Notify(ctx context.Context, kind, body string) error {
	if s.replica.id == "" {
		return ErrSingleServer
	}
	payload, err := s.payload(kind, body)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `SELECT pg_notify(?, ?)`, notifyChannel, payload); err != nil {
		return fmt.Errorf("store: notifying the other replicas (%s): %w", kind, err)
	}
	return nil
}

// notify sends a notification when tx commits; on SQLite it does nothing.
func (tx *Tx) notify(ctx context.Context, kind, body string) error {
	if tx.st.replica.id == "" {
		return nil
	}
	payload, err := tx.st.payload(kind, body)
	if err != nil {
		return err
	}
	if _, err := tx.tx.ExecContext(ctx, `SELECT pg_notify(?, ?)`, notifyChannel, payload); err != nil {
		return fmt.Errorf("store: notifying the other replicas (%s): %w", kind, err)
	}
	return nil
}

func (s *Store) payload(kind, body string) (string, error) {
	if kind == "" || strings.ContainsAny(kind, " \n") {
		return "", fmt.Errorf("store: notification kind %q is not one word", kind)
	}
	if len(body) > MaxNotifyBody {
		return "", fmt.Errorf("store: %s notification of %d bytes is larger than %d (hint: send it in batches)", kind, len(body), MaxNotifyBody)
	}
	return kind + " " + s.replica.id + " " + body, nil
}

// Listener receives the other replicas' notifications, on a connection of
// its own. It is used by one goroutine at a time.
type Listener struct {
	conn *pgx.Conn
	self string
}

// Listen connects and starts listening. Notifications sent before it
// returns are not received: after Listen, read what the notifications
// announce from the database once.
func (s *Store) Listen(ctx context.Context) (*Listener, error) {
	if s.replica.id == "" {
		return nil, ErrSingleServer
	}
	conn, err := pgx.ConnectConfig(ctx, s.replica.cfg)
	if err != nil {
		return nil, scrub(fmt.Errorf("store: connecting to %s to listen: %w", s.Path, err), s.replica.cfg.Password)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("store: LISTEN on %s: %w", s.Path, err)
	}
	return &Listener{conn: conn, self: s.replica.id}, nil
}

// Next waits for the next notification from another replica (this
// replica's own are skipped). An error other than ctx's means the
// connection is lost: close the Listener and Listen again.
func (l *Listener) Next(ctx context.Context) (Notification, error) {
	for {
		n, err := l.conn.WaitForNotification(ctx)
		if err != nil {
			return Notification{}, fmt.Errorf("store: waiting for notifications: %w", err)
		}
		kind, rest, _ := strings.Cut(n.Payload, " ")
		from, body, _ := strings.Cut(rest, " ")
		if from == l.self {
			continue
		}
		return Notification{Kind: kind, Replica: from, Body: body}, nil
	}
}

// Close closes the Listener's connection.
func (l *Listener) Close() error { return l.conn.Close(context.Background()) }
