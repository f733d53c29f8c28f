package db_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"smartmeters/db"
	"smartmeters/db/dbtest"
)

// TestKeySeqMigration migrates, on both stores, a database at version 5
// holding a meter whose key was replaced, with readings received under
// each key: migration 00006 numbers the keys in the order they were added,
// makes the current one the meter's, claims the fingerprints and the
// username, and gives every reading the key of its time.
func TestKeySeqMigration(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			d := b.Open(t)
			p, err := db.NewMigrator(d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 5); err != nil {
				t.Fatal(err)
			}
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			swap := t0.Add(24 * time.Hour)
			fp1, fp2 := sha256.Sum256([]byte("k1")), sha256.Sum256([]byte("k2"))
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := d.ExecContext(ctx, d.Rebind(q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			var id int64
			if err := d.GetContext(ctx, &id, d.Rebind(`INSERT INTO meters (username, public_key, fingerprint, algorithm, registered_at) VALUES ('m', ?, ?, 'ed25519', ?) RETURNING id`),
				[]byte{2}, fp2[:], t0); err != nil {
				t.Fatal(err)
			}
			exec(`INSERT INTO meter_keys (fingerprint, meter_id, public_key, algorithm, added_at, retired_at) VALUES (?, ?, ?, 'ed25519', ?, ?)`,
				fp1[:], id, []byte{1}, t0, swap)
			exec(`INSERT INTO meter_keys (fingerprint, meter_id, public_key, algorithm, added_at) VALUES (?, ?, ?, 'ed25519', ?)`,
				fp2[:], id, []byte{2}, swap)
			for i, at := range []time.Time{t0.Add(time.Hour), swap.Add(-time.Second), swap.Add(time.Hour)} {
				exec(`INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at) VALUES (?, ?, ?, 0, ?, ?)`,
					id, at.UnixMilli(), i, []byte{1}, at)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatal(err)
			}
			var keySeq int
			if err := d.GetContext(ctx, &keySeq, `SELECT key_seq FROM meters WHERE id = $1`, id); err != nil || keySeq != 2 {
				t.Fatalf("meters.key_seq = %d, %v; want 2", keySeq, err)
			}
			var seqs []int
			if err := d.SelectContext(ctx, &seqs, `SELECT seq FROM meter_keys WHERE meter_id = $1 ORDER BY added_at`, id); err != nil || len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 2 {
				t.Fatalf("meter_keys.seq = %v, %v; want [1 2]", seqs, err)
			}
			var claimed int
			if err := d.GetContext(ctx, &claimed, `SELECT count(*) FROM key_fingerprints WHERE meter_id = $1`, id); err != nil || claimed != 2 {
				t.Fatalf("%d fingerprints claimed, %v; want 2", claimed, err)
			}
			if err := d.GetContext(ctx, &claimed, `SELECT count(*) FROM meter_usernames WHERE username = 'm' AND meter_id = $1`, id); err != nil || claimed != 1 {
				t.Fatalf("username claimed %d times, %v; want once", claimed, err)
			}
			var byReading []int
			if err := d.SelectContext(ctx, &byReading, `SELECT key_seq FROM readings WHERE meter_id = $1 ORDER BY timestamp`, id); err != nil {
				t.Fatal(err)
			}
			if len(byReading) != 3 || byReading[0] != 1 || byReading[1] != 1 || byReading[2] != 2 {
				t.Fatalf("readings.key_seq = %v; want [1 1 2]", byReading)
			}
			if _, err := p.DownTo(ctx, 5); err != nil {
				t.Fatalf("down to 5: %v", err)
			}
		})
	}
}
