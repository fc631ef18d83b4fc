package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// ConfigObject is one row of the applied config: an object's kind, its
// name (unique within the kind) and its value as canonical JSON. Package
// reconcile decides what the kinds, names and values are; the store keeps
// them as given.
type ConfigObject struct {
	Kind  string
	Name  string
	Value json.RawMessage
}

// ConfigObjects returns every applied config object, in no particular order.
func (s *Store) ConfigObjects(ctx context.Context) ([]ConfigObject, error) {
	return configObjects(ctx, s.db)
}

// ConfigObjects returns every applied config object as this transaction
// sees them, in no particular order.
func (tx *Tx) ConfigObjects(ctx context.Context) ([]ConfigObject, error) {
	return configObjects(ctx, tx.tx)
}

func configObjects(ctx context.Context, q querier) ([]ConfigObject, error) {
	rows, err := q.QueryContext(ctx, `SELECT kind, name, value FROM config_objects`)
	if err != nil {
		return nil, fmt.Errorf("store: reading applied config objects: %w", err)
	}
	defer rows.Close()
	var objs []ConfigObject
	for rows.Next() {
		var o ConfigObject
		var value string
		if err := rows.Scan(&o.Kind, &o.Name, &value); err != nil {
			return nil, fmt.Errorf("store: reading applied config objects: %w", err)
		}
		o.Value = json.RawMessage(value)
		objs = append(objs, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading applied config objects: %w", err)
	}
	return objs, nil
}

// PutConfigObject stores o, replacing the object of the same kind and name.
func (tx *Tx) PutConfigObject(ctx context.Context, o ConfigObject) error {
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO config_objects (kind, name, value) VALUES (?, ?, ?)
		ON CONFLICT (kind, name) DO UPDATE SET value = excluded.value`, o.Kind, o.Name, string(o.Value))
	if err != nil {
		return fmt.Errorf("store: writing config object %s %q: %w", o.Kind, o.Name, err)
	}
	return nil
}

// DeleteConfigObject removes the object of the given kind and name; a
// missing object is not an error.
func (tx *Tx) DeleteConfigObject(ctx context.Context, kind, name string) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM config_objects WHERE kind = ? AND name = ?`, kind, name); err != nil {
		return fmt.Errorf("store: deleting config object %s %q: %w", kind, name, err)
	}
	return nil
}
