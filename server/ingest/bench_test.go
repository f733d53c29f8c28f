package ingest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server/api"
	"smartmeters/store"
)

// BenchmarkDecodeVerify measures the CPU work of one report before storage:
// JSON decoding, key and signature decoding, the fingerprint, and
// signature verification, per algorithm.
func BenchmarkDecodeVerify(b *testing.B) {
	for _, kt := range crypto.KeyTypes {
		b.Run(string(kt), func(b *testing.B) {
			k, err := crypto.GenerateKey(kt, rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			r := crypto.Reading{WhIn: 1234567, WhOut: 8910, Timestamp: 1764141243123}
			sig, err := k.Sign(r)
			if err != nil {
				b.Fatal(err)
			}
			body, err := json.Marshal(map[string]any{
				"base64PublicKey": k.Public().Base64(),
				"base64Signature": base64.StdEncoding.EncodeToString(sig),
				"reading":         r,
			})
			if err != nil {
				b.Fatal(err)
			}
			pub := k.Public()
			b.ReportAllocs()
			for b.Loop() {
				req, err := decodeRequest(body)
				if err != nil {
					b.Fatal(err)
				}
				sr, err := decodeReport(&req)
				if err != nil {
					b.Fatal(err)
				}
				if sr.fp != pub.Fingerprint() {
					b.Fatal("fingerprint mismatch")
				}
				if err := pub.Verify(sr.reading, sr.signature); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKeyCacheLookup measures the hot path's key lookup for a known
// key (the cache hit every report of a registered meter takes) and for an
// unknown one (remembered, so a flood costs no query).
func BenchmarkKeyCacheLookup(b *testing.B) {
	st := store.New(dbtest.SQLite(b).OpenMigrated(b))
	ctx := context.Background()
	k, err := crypto.GenerateKey(crypto.Ed25519, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	m := store.Meter{Username: "m", PublicKey: k.Public().DER(), Fingerprint: k.Public().Fingerprint(), Algorithm: "ed25519"}
	if err := st.CreateMeter(ctx, &m); err != nil {
		b.Fatal(err)
	}
	srv := newTestService(b, st)
	for _, c := range []struct {
		name string
		fp   crypto.Fingerprint
	}{{"Known", m.Fingerprint}, {"Unknown", crypto.Fingerprint{1, 2, 3}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = srv.keys.lookup(ctx, c.fp)
			}
		})
	}
	b.Run("KnownParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := srv.keys.lookup(ctx, m.Fingerprint); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchBodies returns the body of a signed Ed25519 report as a client
// builds it (api.AppendReport), and a batch of 100 of them.
func benchBodies(b *testing.B) (body, batch []byte) {
	b.Helper()
	k, err := crypto.GenerateKey(crypto.Ed25519, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	r := crypto.Reading{WhIn: 1234567, WhOut: 8910, Timestamp: 1764141243123}
	sig, err := k.Sign(r)
	if err != nil {
		b.Fatal(err)
	}
	body = api.AppendReport(nil, k.Public().Base64(), sig, r)
	batch = []byte{'['}
	for i := range 100 {
		if i > 0 {
			batch = append(batch, ',')
		}
		batch = append(batch, body...)
	}
	return body, append(batch, ']')
}

// BenchmarkDecodeReport measures decoding one report's JSON, key and
// signature (everything before verification), for the body a client
// builds with api.AppendReport and for a batch of 100 such bodies, counted
// (arrayLen) and decoded as ReportBatch does.
func BenchmarkDecodeReport(b *testing.B) {
	body, batch := benchBodies(b)
	b.Run("single", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req, err := decodeRequest(body)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := decodeReport(&req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch=100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n := arrayLen(batch, 1000); n != 100 {
				b.Fatalf("arrayLen %d", n)
			}
			reqs, err := decodeRequests(batch)
			if err != nil || len(reqs) != 100 {
				b.Fatal(err)
			}
			for i := range reqs {
				if _, err := decodeReport(&reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkArrayLen measures counting a batch of 100 reports before it is
// decoded.
func BenchmarkArrayLen(b *testing.B) {
	_, batch := benchBodies(b)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if n := arrayLen(batch, 1000); n != 100 {
			b.Fatalf("arrayLen %d", n)
		}
	}
}
