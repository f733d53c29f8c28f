package verifycmd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"smartmeters/crypto"
	"smartmeters/crypto/verifycmd"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/server/api"
	"smartmeters/store"
)

// exported is a real export, with what a checker would pin.
type exported struct {
	file        string // the export as the server wrote it
	ranged      string // the export of the third to the seventh reading
	serverKey   string // GET /signing-key's base64PublicKey
	fingerprint [2]string
	meter       *crypto.PrivateKey // the meter's second key, for forgeries
}

// export runs a server on SQLite, registers a meter, stores five readings
// signed by its first key, replaces the key, stores five more, and
// returns the meter's export, whole and of a range across the swap.
func export(t *testing.T) exported {
	t.Helper()
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	cfg := server.DefaultConfig()
	cfg.Now = func() time.Time { return now }
	srv, err := server.New(cfg, server.StoresOf(store.New(dbtest.SQLite(t).OpenMigrated(t))), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	pub, adm := httptest.NewServer(srv.PublicHandler()), httptest.NewServer(srv.AdminHandler())
	t.Cleanup(pub.Close)
	t.Cleanup(adm.Close)
	post := func(url string, v any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(v)
		res, err := http.Post(url, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		if res.StatusCode >= 300 {
			t.Fatalf("POST %s: %d %v", url, res.StatusCode, out)
		}
		return out
	}
	k1, k2 := newKey(t, crypto.ECDSAP256), newKey(t, crypto.Ed25519)
	id := int64(post(adm.URL+"/register", api.RegisterRequest{Username: "alice", Base64PublicKey: k1.Public().Base64()})["id"].(float64))
	ts := now.Add(-time.Hour).UnixMilli()
	report := func(k *crypto.PrivateKey) {
		ts += 60_000
		r := crypto.Reading{WhIn: ts / 1000, WhOut: 7, Timestamp: ts}
		sig, err := k.Sign(r)
		if err != nil {
			t.Fatal(err)
		}
		post(pub.URL+"/reportReading", json.RawMessage(api.AppendReport(nil, k.Public().Base64(), sig, r)))
	}
	for range 5 {
		report(k1)
	}
	now = now.Add(time.Minute)
	post(fmt.Sprintf("%s/meters/%d/key", adm.URL, id), map[string]string{"base64PublicKey": k2.Public().Base64(), "reason": "swap"})
	now = now.Add(time.Minute)
	for range 5 {
		report(k2)
	}
	get := func(path string) []byte {
		t.Helper()
		res, err := http.Get(adm.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
		}
		return b
	}
	var sk api.SigningKey
	if err := json.Unmarshal(get(api.PathSigningKey), &sk); err != nil {
		t.Fatal(err)
	}
	return exported{
		file: string(get(fmt.Sprintf("/meters/%d/export.csv", id))),
		ranged: string(get(fmt.Sprintf("/meters/%d/export.csv?from=%s&to=%s", id,
			now.Add(-2*time.Minute-time.Hour+3*time.Minute).Format(time.RFC3339), now.Add(-2*time.Minute-time.Hour+8*time.Minute).Format(time.RFC3339)))),
		serverKey:   sk.Base64PublicKey,
		fingerprint: [2]string{k1.Public().Fingerprint().String(), k2.Public().Fingerprint().String()},
		meter:       k2,
	}
}

func newKey(t *testing.T, kt crypto.KeyType) *crypto.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey(kt, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lines splits an export into its lines, without their CRLF.
func lines(file string) []string {
	return strings.Split(strings.TrimSuffix(file, "\r\n"), "\r\n")
}

// join puts lines back together as the server writes them.
func join(ls []string) string { return strings.Join(ls, "\r\n") + "\r\n" }

// firstRow is the index of the first reading row: after the version, the
// meter, the two keys and the column header.
const firstRow = 5

// field returns row i's fields, and set puts them back.
func field(ls []string, i int) []string { return strings.Split(ls[i], ",") }
func set(ls []string, i int, f []string) []string {
	out := append([]string(nil), ls...)
	out[i] = strings.Join(f, ",")
	return out
}

// resealed recomputes the end line of a changed export, as a forger who
// knows the format would: only the server's signature then tells.
func resealed(ls []string) string {
	end := len(ls) - 2
	body := join(ls[:end])
	sum := sha256.Sum256([]byte(body))
	rows := end - firstRow
	out := append([]string(nil), ls...)
	out[end] = api.EndLine(uint64(rows), hex.EncodeToString(sum[:]))
	return join(out)
}

func TestVerify(t *testing.T) {
	e := export(t)
	ls := lines(e.file)
	if !strings.HasPrefix(ls[len(ls)-1], "# signature,") || len(ls) != firstRow+10+2 {
		t.Fatalf("the export is not framed as expected:\n%s", e.file)
	}
	pinAll := []string{"--fingerprint", e.fingerprint[0], "--fingerprint", e.fingerprint[1], "--server-key", e.serverKey}
	// A forged row: a reading signed by the meter's own current key, but
	// declared by a forger who also declares an unrelated key.
	rogue := newKey(t, crypto.Ed25519)
	rogueRow := func() []string {
		r := crypto.Reading{WhIn: 9e9, WhOut: 9, Timestamp: 9e12}
		sig, _ := rogue.Sign(r)
		f := field(ls, firstRow+9)
		f[2], f[3], f[4], f[5], f[6], f[7] = "ed25519", rogue.Public().Base64(), "9000000000000", "9000000000", "9", base64.StdEncoding.EncodeToString(sig)
		return f
	}
	tests := []struct {
		name     string
		file     string
		args     []string
		wantCode int
		want     []string // substrings of stdout+stderr
	}{
		{"OK", e.file, nil, 0, []string{"10 rows: 10 verified, 0 failed", "complete: 10 rows as declared", "not checked"}},
		{"OKPinned", e.file, pinAll, 0, []string{"10 verified", "server signature: verified"}},
		{"OKRange", e.ranged, pinAll, 0, []string{
			"readings from 2026-11-26T07:03:00.000Z to 2026-11-26T07:08:00.000Z (exclusive), 5 rows: 5 verified, 0 failed",
			"server signature: verified"}},
		{"ErrRangeNarrowed", join(set(lines(e.ranged), 2, []string{"# range", fmt.Sprint(time.Date(2026, 11, 26, 7, 4, 0, 0, time.UTC).UnixMilli()),
			fmt.Sprint(time.Date(2026, 11, 26, 7, 8, 0, 0, time.UTC).UnixMilli())})), pinAll, 1,
			[]string{"line 7: timestamp 1795676580000 is outside the file's range", "ALTERED", "server signature: does not verify"}},
		{"ErrRowDropped", join(append(append([]string(nil), ls[:firstRow+3]...), ls[firstRow+4:]...)), nil, 1,
			[]string{"INCOMPLETE: the end line declares 10 rows"}},
		{"ErrRowDuplicated", join(append(append(append([]string(nil), ls[:firstRow+4]...), ls[firstRow+3]), ls[firstRow+4:]...)), nil, 1,
			[]string{fmt.Sprintf("line %d: timestamp", firstRow+5), "not after the row before"}},
		{"ErrRowsSwapped", join(append(append(append([]string(nil), ls[:firstRow+2]...), ls[firstRow+3], ls[firstRow+2]), ls[firstRow+4:]...)), nil, 1,
			[]string{fmt.Sprintf("line %d: timestamp", firstRow+4), "out of order"}},
		{"ErrMeterID", join(set(ls, firstRow+1, append([]string{"43"}, field(ls, firstRow+1)[1:]...))), nil, 1,
			[]string{fmt.Sprintf("line %d: meter_id \"43\"", firstRow+2), "ALTERED"}},
		{"ErrUsername", join(set(ls, firstRow+1, append([]string{field(ls, firstRow+1)[0], "mallory"}, field(ls, firstRow+1)[2:]...))), nil, 1,
			[]string{`username "mallory"`}},
		{"ErrReceivedAtChanged", join(set(ls, firstRow+1, append(field(ls, firstRow+1)[:8], "2026-11-26T08:00:00.500Z"))), nil, 1,
			[]string{"ALTERED: the SHA-256 does not match"}},
		{"ErrReceivedAtResealed", resealed(set(ls, firstRow+1, append(field(ls, firstRow+1)[:8], "2026-11-26T08:00:00.500Z"))), pinAll, 1,
			[]string{"server signature: does not verify"}},
		{"ErrReceivedOutsideItsKey", resealed(set(ls, firstRow+7, append(field(ls, firstRow+7)[:8], "2026-11-26T07:00:00.000Z"))), nil, 1,
			[]string{fmt.Sprintf("line %d: received at 2026-11-26T07:00:00.000Z, when key 2 was not the meter's", firstRow+8)}},
		{"ErrUnrelatedKey", join(append(append(append([]string(nil), ls[:firstRow+10]...), strings.Join(rogueRow(), ",")), ls[firstRow+10:]...)), nil, 1,
			[]string{fmt.Sprintf("line %d: signed by a key that is not one of meter", firstRow+11)}},
		{"ErrUnrelatedKeyDeclared", func() string {
			forged := append(append(append([]string(nil), ls[:4]...), api.KeyLine(api.ExportKey{Seq: 3, Fingerprint: rogue.Public().Fingerprint().String(),
				Algorithm: "ed25519", Base64PublicKey: rogue.Public().Base64(), AddedAt: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)})), ls[4:]...)
			forged = append(append(append([]string(nil), forged[:firstRow+11]...), strings.Join(rogueRow(), ",")), forged[firstRow+11:]...)
			return resealed(forged)
		}(), []string{"--fingerprint", e.fingerprint[0], "--fingerprint", e.fingerprint[1]}, 1,
			[]string{"not a key you pinned"}},
		{"ErrPlusSign", join(set(ls, firstRow+2, append(append(field(ls, firstRow+2)[:5], "+"+field(ls, firstRow+2)[5]), field(ls, firstRow+2)[6:]...))), nil, 1,
			[]string{`wh_in "+`, "not a whole number as the export writes one"}},
		{"ErrLeadingZero", join(set(ls, firstRow+2, append(append(field(ls, firstRow+2)[:6], "07"), field(ls, firstRow+2)[7:]...))), nil, 1,
			[]string{`wh_out "07"`}},
		{"ErrValueChanged", join(set(ls, firstRow+2, append(append(field(ls, firstRow+2)[:5], "1"), field(ls, firstRow+2)[6:]...))), nil, 1,
			[]string{fmt.Sprintf("line %d: ", firstRow+3), "signature"}},
		{"ErrSecondColumn", join(append(append([]string(nil), ls[:4]...), strings.Join(api.ExportColumns, ",")+",wh_in")), nil, 1,
			[]string{`column "wh_in" appears twice`}},
		{"ErrSignatureMissing", join(ls[:len(ls)-1]), pinAll, 1, []string{"server signature: missing"}},
		{"ErrOtherServer", e.file, []string{"--server-key", newKey(t, crypto.Ed25519).Public().Base64()}, 1, []string{"not by the server key you gave"}},
		{"ErrTruncated", join(ls[:firstRow+6]), nil, 1, []string{"truncated"}},
		{"ErrVersion1", strings.Join(api.ExportColumns, ",") + "\n", nil, 1, []string{"not an export of this version"}},
		{"ErrEmpty", "", nil, 1, []string{"empty file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "export.csv")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(append([]string{"smartmeters", "verify"}, tt.args...), path), &stdout, &stderr)
			all := stdout.String() + stderr.String()
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s", code, tt.wantCode, all)
			}
			for _, want := range tt.want {
				if !strings.Contains(all, want) {
					t.Errorf("output lacks %q:\n%s", want, all)
				}
			}
			if n := strings.Count(strings.TrimSpace(stderr.String()), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want at most one: %q", n+1, &stderr)
			}
		})
	}
}

// TestVerifyKeyFile pins the meter's keys through files, as an operator
// who holds the meters' public keys would.
func TestVerifyKeyFile(t *testing.T) {
	e := export(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "export.csv")
	if err := os.WriteFile(path, []byte(e.file), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "meter.pub")
	if err := os.WriteFile(keyFile, []byte(e.meter.Public().Base64()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	serverKeyFile := filepath.Join(dir, "server.pub")
	if err := os.WriteFile(serverKeyFile, []byte(e.serverKey), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	// Only the second key is pinned: the first five rows fail.
	code := run(context.Background(), []string{"smartmeters", "verify", "--key", keyFile, "--server-key", serverKeyFile, path}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "10 rows: 5 verified, 5 failed") || !strings.Contains(stdout.String(), "server signature: verified") {
		t.Fatalf("exit %d\n%s%s", code, &stdout, &stderr)
	}
}

// run runs args as the smartmeters binary would with this package's
// commands: a failure is one line on stderr and an exit status, 2 for a
// malformed command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func(_ *cli.Context, err error, _ bool) error { return cli.Exit(err.Error()+" (see --help)", 2) }
	app := &cli.App{
		Name: "smartmeters", Writer: stdout, ErrWriter: stderr,
		Commands:       []*cli.Command{verifycmd.Command()},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usage,
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = usage
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "smartmeters: %v\n", err)
	var exit cli.ExitCoder
	if errors.As(err, &exit) && exit.ExitCode() != 0 {
		return exit.ExitCode()
	}
	return 1
}
