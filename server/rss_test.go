package server_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// BenchmarkMillionMetersRSS registers SMARTMETERS_BENCH_METERS meters
// straight into PostgreSQL, has every one of them report through
// /reportReadings so that each key is parsed and cached (the key cache
// sized by SMARTMETERS_BENCH_KEY_CACHE, default all of them), and reports
// the process's peak RSS and Go heap. It runs only when
// SMARTMETERS_BENCH_METERS and SMARTMETERS_TEST_DATABASE_URL are set:
//
//	SMARTMETERS_BENCH_METERS=1000000 go test ./server -run XXX \
//	    -bench BenchmarkMillionMetersRSS -benchtime 1x -timeout 30m
func BenchmarkMillionMetersRSS(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("SMARTMETERS_BENCH_METERS"))
	if n <= 0 {
		b.Skip("set SMARTMETERS_BENCH_METERS (and SMARTMETERS_TEST_DATABASE_URL) to run")
	}
	pg, ok := dbtest.Postgres(b)
	if !ok {
		b.Skip("PostgreSQL is needed")
	}
	conn := pg.OpenMigrated(b)

	// Meter i's key comes from a seed derived from i, so the reporting
	// phase can re-derive it instead of holding a million private keys.
	keyOf := func(i int) ed25519.PrivateKey {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], uint64(i))
		seed := sha256.Sum256(buf[:])
		return ed25519.NewKeyFromSeed(seed[:])
	}
	start := time.Now()
	tx, err := conn.Begin()
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.Prepare(pq.CopyIn("meters", "username", "public_key", "fingerprint", "algorithm", "registered_at"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		der, err := x509.MarshalPKIXPublicKey(keyOf(i).Public())
		if err != nil {
			b.Fatal(err)
		}
		fp := crypto.FingerprintOf(der)
		if _, err := stmt.Exec("m-"+strconv.Itoa(i), der, fp[:], "ed25519", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := stmt.Exec(); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	b.Logf("registered %d meters in %s", n, time.Since(start).Round(time.Millisecond))

	cacheSize := n
	if v, err := strconv.Atoi(os.Getenv("SMARTMETERS_BENCH_KEY_CACHE")); err == nil && v > 0 {
		cacheSize = v
	}
	cfg := server.DefaultConfig()
	cfg.Ingest.KeyCacheSize = cacheSize
	srv := newServer(b, cfg, store.New(conn))
	pub := httptest.NewServer(srv.PublicHandler())
	b.Cleanup(pub.Close)

	start = time.Now()
	const batch = 1000
	ts := time.Now().Add(-time.Hour).UnixMilli()
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Go(func() {
			for {
				mu.Lock()
				lo := next
				next += batch
				mu.Unlock()
				if lo >= n {
					return
				}
				var body bytes.Buffer
				body.WriteByte('[')
				for i := lo; i < min(lo+batch, n); i++ {
					k := keyOf(i)
					der, _ := x509.MarshalPKIXPublicKey(k.Public())
					r := crypto.Reading{WhIn: int64(i), WhOut: 0, Timestamp: ts}
					msg := r.Message()
					if i > lo {
						body.WriteByte(',')
					}
					json.NewEncoder(&body).Encode(map[string]any{
						"base64PublicKey": base64.StdEncoding.EncodeToString(der),
						"base64Signature": base64.StdEncoding.EncodeToString(ed25519.Sign(k, msg[:])),
						"reading":         r,
					})
				}
				body.WriteByte(']')
				res, err := http.Post(pub.URL+"/reportReadings", "application/json", &body)
				if err != nil {
					b.Error(err)
					return
				}
				out, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || bytes.Count(out, []byte(`"status":201`)) != min(batch, n-lo) {
					b.Errorf("batch at %d: %d %.200s", lo, res.StatusCode, out)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	hwm, rss := procStatus(b, "VmHWM"), procStatus(b, "VmRSS")
	b.Logf("%d meters (key cache %d) reported once each in %s (%.0f readings/s); peak RSS %d MB, RSS %d MB, Go heap in use %d MB after GC",
		n, cacheSize, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), hwm>>10, rss>>10, ms.HeapInuse>>20)
	b.ReportMetric(float64(hwm>>10), "peak-RSS-MB")
	b.ReportMetric(float64(ms.HeapInuse>>20), "heap-MB")
}

// procStatus returns a kB figure from /proc/self/status.
func procStatus(b *testing.B, field string) int64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
