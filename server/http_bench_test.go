package server_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// BenchmarkReportReadingHTTP measures the whole single-reading path over
// real HTTP on every backend: decoding, key cache, verification, group
// commit and the answer. Readings are signed before the clock starts.
func BenchmarkReportReadingHTTP(b *testing.B) {
	for _, be := range dbtest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			st := store.New(be.OpenMigrated(b))
			cfg := server.DefaultConfig()
			if be.Driver() == "sqlite" {
				cfg.Ingest.Committers = 1
			}
			srv := newServer(b, cfg, st)
			pub := httptest.NewServer(srv.PublicHandler())
			b.Cleanup(pub.Close)
			adm := httptest.NewServer(srv.AdminHandler())
			b.Cleanup(adm.Close)

			const meters = 64
			keys := make([]*crypto.PrivateKey, meters)
			for i := range keys {
				k, err := crypto.GenerateKey(crypto.Ed25519, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				keys[i] = k
				body, _ := json.Marshal(map[string]string{"username": "bench-" + k.Public().Fingerprint().String()[:16], "base64PublicKey": k.Public().Base64()})
				res, err := http.Post(adm.URL+"/register", "application/json", bytes.NewReader(body))
				if err != nil || res.StatusCode != http.StatusCreated {
					b.Fatalf("register: %v %v", err, res.Status)
				}
				res.Body.Close()
			}
			n := b.N + 64
			bodies := make([][]byte, n)
			t0 := time.Now().Add(-time.Duration(n) * time.Second).UnixMilli()
			for i := range bodies {
				k := keys[i%meters]
				r := crypto.Reading{WhIn: int64(i), Timestamp: t0 + int64(i)*1000}
				sig, err := k.Sign(r)
				if err != nil {
					b.Fatal(err)
				}
				bodies[i], _ = json.Marshal(map[string]any{"base64PublicKey": k.Public().Base64(),
					"base64Signature": base64.StdEncoding.EncodeToString(sig), "reading": r})
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			var next atomic.Int64
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) - 1
					res, err := client.Post(pub.URL+"/reportReading", "application/json", bytes.NewReader(bodies[i]))
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusCreated {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkRequestLog measures what the request log and the latency
// histogram cost a request, through the public handler without a network:
// GET /healthz logged every time, sampled one in 100, and not logged.
func BenchmarkRequestLog(b *testing.B) {
	st := store.New(dbtest.SQLite(b).OpenMigrated(b))
	for _, every := range []int{1, 100, 0} {
		b.Run("Every"+strconv.Itoa(every), func(b *testing.B) {
			srv := newServer(b, testConfig(func(c *server.Config) { c.RequestLogEvery = every }), st)
			h := srv.PublicHandler()
			req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("/healthz: %d", rec.Code)
				}
			}
		})
	}
}
