package store

import (
	"context"
	"fmt"
	"time"
)

// EnsureServerKey stores pem (a PEM private key) as the server key called
// name unless one is stored already, and returns the one stored: every
// server on the database gets the same key, whichever stored it first.
func (s *Store) EnsureServerKey(ctx context.Context, name string, pem []byte, at time.Time) ([]byte, error) {
	const insert = `
		INSERT INTO server_keys (name, pem, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING`
	if _, err := s.db.ExecContext(ctx, insert, name, string(pem), at.UTC()); err != nil {
		return nil, fmt.Errorf("store server key %s: %w", name, err)
	}
	const q = `SELECT pem FROM server_keys WHERE name = $1`
	var stored string
	if err := s.db.GetContext(ctx, &stored, q, name); err != nil {
		return nil, fmt.Errorf("read server key %s: %w", name, err)
	}
	return []byte(stored), nil
}
