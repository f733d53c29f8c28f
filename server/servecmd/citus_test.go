package servecmd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
)

// envCitusRestart names a shell command that restarts one worker of the
// Citus cluster that SMARTMETERS_TEST_CITUS_URL names, as in
//
//	su postgres -c 'pg_ctl -D /var/lib/citus-cluster/w1 -l w1.log restart -m fast'
const envCitusRestart = "SMARTMETERS_TEST_CITUS_RESTART"

// TestCitusWorkerRestart restarts a Citus worker while meters report to a
// server on the coordinator, each meter resending a reading until it is
// acknowledged, as meters do. Every acknowledged reading must be stored,
// and ingest must come back by itself once the worker is up.
func TestCitusWorkerRestart(t *testing.T) {
	restart := os.Getenv(envCitusRestart)
	if restart == "" {
		t.Skipf("set %s to a command that restarts one worker of the cluster at %s to run it", envCitusRestart, dbtest.EnvCitusURL)
	}
	c, ok := dbtest.CitusCluster(t)
	if !ok {
		t.Skipf("needs a Citus cluster: set %s", dbtest.EnvCitusURL)
	}
	bin := buildBinary(t)
	runBinary(t, bin, "migrate", "--database-url", c.URL, "up")
	conn := c.Open(t)
	dbtest.RequireDistributed(t, conn)
	srv := startServer(t, bin, "citus", c.URL)

	const meters, senders = 40, 8
	keys := make([]*crypto.PrivateKey, meters)
	for i := range keys {
		keys[i] = generateKey(t)
		res := srv.post(t, "/register", map[string]string{"username": fmt.Sprintf("restart-%d", i), "base64PublicKey": keys[i].Public().Base64()})
		if res.status != http.StatusCreated {
			t.Fatalf("register: %d %s", res.status, res.raw)
		}
	}

	type ack struct {
		meter     string
		timestamp int64
	}
	var (
		mu        sync.Mutex
		acked     []ack
		refused   atomic.Int64 // answers that asked for a resend
		lastRefus atomic.Int64 // unix nanoseconds
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	client := &http.Client{Timeout: 10 * time.Second}
	start := time.Now().Add(-time.Hour).UnixMilli()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for n := int64(1); ctx.Err() == nil; n++ {
				for i := s; i < meters; i += senders {
					r := crypto.Reading{WhIn: n, WhOut: 0, Timestamp: start + n*1000}
					// A meter resends a reading until it is acknowledged.
					for ctx.Err() == nil {
						code, err := send(ctx, client, srv.publicURL, keys[i], r)
						if err == nil && (code == http.StatusCreated || code == http.StatusOK) {
							mu.Lock()
							acked = append(acked, ack{keys[i].Public().Base64(), r.Timestamp})
							mu.Unlock()
							break
						}
						if err == nil && code != http.StatusServiceUnavailable && code != http.StatusTooManyRequests {
							t.Errorf("reading answered %d; only 503 and 429 may ask for a resend", code)
							return
						}
						refused.Add(1)
						lastRefus.Store(time.Now().UnixNano())
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
		})
	}

	time.Sleep(2 * time.Second)
	began := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, "sh", "-c", restart)
	cmd.WaitDelay = time.Second // a server it starts may hold the output open
	if out, err := cmd.CombinedOutput(); err != nil {
		stop()
		wg.Wait()
		t.Fatalf("%s: %v\n%s", restart, err, out)
	}
	t.Logf("worker restarted in %s", time.Since(began).Round(time.Millisecond))
	// Ingest has recovered once two seconds pass without a refusal.
	deadline := time.Now().Add(60 * time.Second)
	for time.Since(time.Unix(0, lastRefus.Load())) < 2*time.Second {
		if time.Now().After(deadline) {
			stop()
			wg.Wait()
			t.Fatalf("ingest still refuses readings 60 s after the worker restarted (%d refusals)", refused.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var recovered time.Duration
	if last := lastRefus.Load(); last > 0 {
		recovered = time.Unix(0, last).Sub(began)
	}
	stop()
	wg.Wait()

	// Every acknowledged reading is stored.
	fps := map[string]int64{}
	for _, k := range keys {
		var id int64
		if err := conn.Get(&id, `SELECT meter_id FROM key_fingerprints WHERE fingerprint = $1`, fingerprint(k)); err != nil {
			t.Fatal(err)
		}
		fps[k.Public().Base64()] = id
	}
	type key struct{ meter, ts int64 }
	stored := map[key]bool{}
	rows, err := conn.Query(`SELECT meter_id, timestamp FROM readings`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.meter, &k.ts); err != nil {
			t.Fatal(err)
		}
		stored[k] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	lost := 0
	for _, a := range acked {
		if !stored[key{fps[a.meter], a.timestamp}] {
			lost++
		}
	}
	t.Logf("%d readings acknowledged, %d stored, %d resends asked for; last refusal %s after the restart began",
		len(acked), len(stored), refused.Load(), recovered.Round(time.Millisecond))
	if lost > 0 {
		t.Fatalf("%d acknowledged readings are not stored", lost)
	}
}

// send reports r signed by k and returns the status.
func send(ctx context.Context, client *http.Client, publicURL string, k *crypto.PrivateKey, r crypto.Reading) (int, error) {
	sig, err := k.Sign(r)
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(map[string]any{
		"base64PublicKey": k.Public().Base64(),
		"base64Signature": base64.StdEncoding.EncodeToString(sig),
		"reading":         r,
	})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, publicURL+"/reportReading", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

func fingerprint(k *crypto.PrivateKey) []byte {
	fp := k.Public().Fingerprint()
	return fp[:]
}
