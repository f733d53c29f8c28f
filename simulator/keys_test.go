package simulator_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smartmeters/crypto"
	"smartmeters/simulator"
)

func newMeterKeys(t *testing.T, types ...crypto.KeyType) []simulator.MeterKey {
	t.Helper()
	out := make([]simulator.MeterKey, len(types))
	for i, kt := range types {
		k, err := crypto.GenerateKey(kt, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = simulator.MeterKey{Username: "meter-" + string(kt), Key: k}
	}
	return out
}

func TestKeyFileRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.pem")
	want := newMeterKeys(t, crypto.Ed25519, crypto.ECDSAP256, crypto.ECDSAP384)
	if err := simulator.SaveKeyFile(path, want); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %04o, want 0600", perm)
	}
	got, err := simulator.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("loaded %d meters, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Username != want[i].Username ||
			got[i].Key.Public().Fingerprint() != want[i].Key.Public().Fingerprint() ||
			got[i].Key.Type() != want[i].Key.Type() {
			t.Errorf("meter %d: got %s %s, want %s %s", i, got[i].Username, got[i].Key.Public().Fingerprint(),
				want[i].Username, want[i].Key.Public().Fingerprint())
		}
	}
	// Saving over an existing file replaces it.
	if err := simulator.SaveKeyFile(path, want[:1]); err != nil {
		t.Fatal(err)
	}
	if got, err := simulator.LoadKeyFile(path); err != nil || len(got) != 1 {
		t.Errorf("after saving one meter over three: %d meters, %v", len(got), err)
	}
}

func TestLoadKeyFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pem")
	if err := simulator.SaveKeyFile(good, newMeterKeys(t, crypto.Ed25519, crypto.ECDSAP256)); err != nil {
		t.Fatal(err)
	}
	valid, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	begin := bytes.Index(valid, []byte("-----BEGIN"))
	firstBlock := valid[begin : bytes.Index(valid, []byte("-----END"))+len("-----END PRIVATE KEY-----\n")]
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    string
	}{
		{"Empty", nil, 0o600, "holds no keys"},
		{"Truncated", valid[:len(valid)-60], 0o600, "PEM block is truncated: no END line"},
		{"CorruptBase64", bytes.Replace(valid, []byte("MC"), []byte("M!"), 1), 0o600, "line 3: corrupt PEM block"},
		{"Garbage", append([]byte("hello\n"), valid...), 0o600, `line 1: "hello" where a "-----BEGIN PRIVATE KEY-----" line should be`},
		{"NoUsername", bytes.Replace(valid, []byte("Username: "), []byte("Owner: "), 1), 0o600, `without a "Username" header`},
		{"BadUsername", bytes.Replace(valid, []byte("Username: meter-ed25519"), []byte("Username: a b"), 1), 0o600, `username "a b"`},
		{"DuplicateMeter", append(append([]byte{}, firstBlock...), firstBlock...), 0o600, "appears twice"},
		{"NotAKey", bytes.Replace(valid, []byte("PRIVATE KEY"), []byte("PUBLIC KEY"), 2), 0o600, "where a \"-----BEGIN PRIVATE KEY-----\" line should be"},
		{"ReadableByOthers", valid, 0o644, "mode 0644 lets others read the private keys; run chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".pem")
			if err := os.WriteFile(path, tt.content, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := simulator.LoadKeyFile(path)
			checkKeyFileError(t, err, path, tt.want)
		})
	}
	t.Run("Directory", func(t *testing.T) {
		_, err := simulator.LoadKeyFile(dir)
		checkKeyFileError(t, err, dir, "not a regular file")
	})
	t.Run("Missing", func(t *testing.T) {
		path := filepath.Join(dir, "missing.pem")
		_, err := simulator.LoadKeyFile(path)
		if !errors.Is(err, simulator.ErrNoKeyFile) {
			t.Errorf("err = %v, want ErrNoKeyFile", err)
		}
	})
	t.Run("Unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads every file")
		}
		path := filepath.Join(dir, "unreadable.pem")
		if err := os.WriteFile(path, valid, 0o200); err != nil {
			t.Fatal(err)
		}
		_, err := simulator.LoadKeyFile(path)
		checkKeyFileError(t, err, path, "permission denied")
	})
}

func checkKeyFileError(t *testing.T, err error, path, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("loaded; want an error containing %q", want)
	}
	msg := err.Error()
	if !strings.Contains(msg, want) || !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming %s and containing %q", msg, path, want)
	}
}

// TestRunKeysFile checks that a run saves its new fleet and that the next
// run reuses it without registering.
func TestRunKeysFile(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, nil, nil)
	path := filepath.Join(t.TempDir(), "fleet.pem")
	cfg := ts.config(3, 1)
	cfg.KeysFile = path
	first := runSim(t, context.Background(), cfg)
	if first.Registered != 3 || first.Err() != nil {
		t.Fatalf("first run: registered %d, %v", first.Registered, first.Err())
	}
	saved, err := simulator.LoadKeyFile(path)
	if err != nil || len(saved) != 3 {
		t.Fatalf("saved %d meters, %v", len(saved), err)
	}

	cfg.Meters = 2
	cfg.KeyType = "" // ignored with an existing keys file
	second := runSim(t, context.Background(), cfg)
	if second.Registered != 0 || second.Meters != 2 || second.Accepted != 2 || second.Err() != nil {
		t.Errorf("second run: registered %d, meters %d, accepted %d, %v", second.Registered, second.Meters, second.Accepted, second.Err())
	}
	if n := count(t, ts.db, `SELECT count(*) FROM meters`); n != 3 {
		t.Errorf("store holds %d meters, want 3", n)
	}

	cfg.Meters = 4
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "holds 3 meters, fewer than the 4 asked for") {
		t.Errorf("Run with too few meters in the file: %v", err)
	}
}

// TestRunKeysFileUnregistered checks the hint when a keys file's meters are
// unknown to the server.
func TestRunKeysFileUnregistered(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, nil, nil)
	path := filepath.Join(t.TempDir(), "fleet.pem")
	if err := simulator.SaveKeyFile(path, newMeterKeys(t, crypto.Ed25519)); err != nil {
		t.Fatal(err)
	}
	cfg := ts.config(1, 2)
	cfg.KeysFile = path
	sum := runSim(t, context.Background(), cfg)
	err := sum.Err()
	if err == nil || !strings.Contains(err.Error(), "2 of 2 readings were not accepted (unknown-key 2)") ||
		!strings.Contains(err.Error(), "registered on this server?") {
		t.Errorf("Err = %v", err)
	}
}

// TestRunKeysFileResumes stops a run of a saved fleet and starts another
// with a different seed, hence other starting registers: each meter
// continues from its last stored reading, so nothing is refused and every
// meter's registers keep rising.
func TestRunKeysFileResumes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, nil, nil)
	cfg := ts.config(8, 3)
	cfg.KeysFile = filepath.Join(t.TempDir(), "fleet.pem")
	if first := runSim(t, context.Background(), cfg); first.Registered != 8 || first.Err() != nil {
		t.Fatalf("first run: registered %d, %v", first.Registered, first.Err())
	}
	for seed := int64(2); seed <= 3; seed++ {
		cfg.Seed = seed
		sum := runSim(t, context.Background(), cfg)
		if sum.Registered != 0 || sum.Accepted != 24 || sum.Err() != nil {
			t.Errorf("run with seed %d: registered %d, accepted %d of 24, rejected %v, %v",
				seed, sum.Registered, sum.Accepted, sum.RejectedByReason, sum.Err())
		}
	}
	if n := count(t, ts.db, `SELECT count(*) FROM readings`); n != 3*24 {
		t.Errorf("store holds %d readings, want %d", n, 3*24)
	}
	checkRegisters(t, ts.db)
}

// TestRunKeysFileUnwritable names a keys file that cannot be written: the
// run fails before it registers a meter, whose private key would be lost.
// A registration that fails leaves no temporary keys file behind.
func TestRunKeysFileUnwritable(t *testing.T) {
	t.Parallel()
	t.Run("NoDirectory", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, nil, nil)
		dir := filepath.Join(t.TempDir(), "missing")
		cfg := ts.config(2, 1)
		cfg.KeysFile = filepath.Join(dir, "fleet.pem")
		sim, err := simulator.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := "keys file " + cfg.KeysFile + " cannot be written: directory " + dir + ": no such file or directory; no meter was registered"
		if _, err := sim.Run(context.Background()); err == nil || err.Error() != want {
			t.Errorf("Run: %v\nwant %s", err, want)
		}
		if n := count(t, ts.db, `SELECT count(*) FROM meters`); n != 0 {
			t.Errorf("store holds %d meters, want none registered", n)
		}
	})
	t.Run("RegistrationFails", func(t *testing.T) {
		t.Parallel()
		refuse := func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no", http.StatusForbidden)
			})
		}
		ts := newTestServer(t, nil, refuse)
		dir := t.TempDir()
		cfg := ts.config(2, 1)
		cfg.KeysFile = filepath.Join(dir, "fleet.pem")
		sim, err := simulator.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("Run: %v, want the registration's 403", err)
		}
		if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
			t.Errorf("the keys file's directory holds %v (%v), want nothing", entries, err)
		}
	})
}
