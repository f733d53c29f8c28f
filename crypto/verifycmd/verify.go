// Package verifycmd is `smartmeters verify`: the offline check of a
// meter's export, by anyone who holds the file.
package verifycmd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"smartmeters/crypto"
	"smartmeters/server/api"
)

// Command returns `smartmeters verify`.
func Command() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a meter's exported readings offline: signatures, attribution, completeness",
		ArgsUsage: "FILE",
		Description: "Reads an export from GET /meters/{id}/export.csv (\"-\" reads stdin) and checks that:\n" +
			"every row is signed by the key it names, one of the meter's keys, and was received while\n" +
			"that key was the meter's; every row is the meter's; rows are in time order with no\n" +
			"duplicates; every value is written as the export writes it; the columns are exactly the\n" +
			"export's; and the file is whole: its row count and SHA-256 match its end line.\n\n" +
			"--fingerprint and --key pin the meter keys you expect: every row must be signed by one of\n" +
			"them. --server-key pins the server's export key (GET /signing-key on the admin listener):\n" +
			"the file must carry its signature over the row count and SHA-256, which nobody without\n" +
			"the server's private key can make for a changed, shortened or padded file.\n\n" +
			"It names each failing row and why, prints a summary, and exits 1 when anything fails.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "fingerprint", Usage: "hex SHA-256 fingerprint of a meter key to expect; repeat for a meter whose key was replaced", EnvVars: []string{"SMARTMETERS_VERIFY_FINGERPRINT"}},
			&cli.StringSliceFlag{Name: "key", TakesFile: true, Usage: "file with a meter public key to expect (PEM or base64 DER); repeatable", EnvVars: []string{"SMARTMETERS_VERIFY_KEY"}},
			&cli.StringFlag{Name: "server-key", Usage: "the server's export key: its base64 DER as GET /signing-key gives it, or a file holding it (PEM or base64)", EnvVars: []string{"SMARTMETERS_VERIFY_SERVER_KEY"}},
			&cli.IntFlag{Name: "min-rsa-bits", Value: 1024, Usage: "smallest RSA modulus to accept; the check is of the signatures, not of the server's key policy", EnvVars: []string{"SMARTMETERS_VERIFY_MIN_RSA_BITS"}},
		},
		Action: run,
	}
}

func run(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("verify takes exactly one FILE (see --help)", 2)
	}
	v := verifier{minRSABits: c.Int("min-rsa-bits"), out: c.App.Writer}
	if err := v.pin(c.StringSlice("fingerprint"), c.StringSlice("key")); err != nil {
		return err
	}
	if s := c.String("server-key"); s != "" {
		k, err := readKey(s, v.minRSABits)
		if err != nil {
			return fmt.Errorf("--server-key: %w", err)
		}
		v.serverKey = k
	}
	name := c.Args().First()
	var in io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	res, err := v.check(in)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(c.App.Writer, "%s: %s\n", name, res)
	if !res.ok() {
		return cli.Exit(fmt.Sprintf("%s: verification failed: %s", name, res.verdict()), 1)
	}
	return nil
}

// readKey reads a public key given as its text (base64 DER or PEM) or as
// a file holding that text.
func readKey(s string, minRSABits int) (*crypto.PublicKey, error) {
	if k, err := crypto.ParsePublicKey(s, minRSABits); err == nil {
		return k, nil
	}
	raw, err := os.ReadFile(s)
	if err != nil {
		return nil, fmt.Errorf("neither a key nor a readable file: %w", err)
	}
	return crypto.ParsePublicKey(strings.TrimSpace(string(raw)), minRSABits)
}

// verifier checks exports.
type verifier struct {
	pins       map[crypto.Fingerprint]bool // the meter keys expected; nil: any of the file's
	serverKey  *crypto.PublicKey           // nil: the server's signature is not checked
	minRSABits int
	out        io.Writer // one line per failing row
}

// pin adds the keys named by fingerprint or by key file to those expected.
func (v *verifier) pin(fingerprints, keyFiles []string) error {
	for _, s := range fingerprints {
		fp, err := crypto.ParseFingerprint(s)
		if err != nil {
			return fmt.Errorf("--fingerprint %q: %w", s, err)
		}
		v.pinned(fp)
	}
	for _, path := range keyFiles {
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("--key: %w", err)
		}
		k, err := crypto.ParsePublicKey(strings.TrimSpace(string(raw)), v.minRSABits)
		if err != nil {
			return fmt.Errorf("--key %s: %w", path, err)
		}
		v.pinned(k.Fingerprint())
	}
	return nil
}

func (v *verifier) pinned(fp crypto.Fingerprint) {
	if v.pins == nil {
		v.pins = map[crypto.Fingerprint]bool{}
	}
	v.pins[fp] = true
}

// key is one of the meter's keys as the file declares it.
type key struct {
	api.ExportKey
	parsed *crypto.PublicKey
}

// result is what a check found.
type result struct {
	meterID        int64
	username       string
	ranged         bool  // the file holds only the readings in [from, to)
	from, to       int64 // the timestamps the file's rows may have
	rows, failed   int
	declared       uint64 // rows the end line declares
	digestOK       bool
	signature      string // "verified", "not checked", "missing", or why it failed
	signatureFails bool
}

func (r result) ok() bool {
	return r.failed == 0 && r.complete() && !r.signatureFails
}

func (r result) complete() bool { return r.digestOK && r.declared == uint64(r.rows) }

func (r result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "meter %d (%s), ", r.meterID, r.username)
	if r.ranged {
		fmt.Fprintf(&b, "readings from %s to %s (exclusive), ", time.UnixMilli(r.from).UTC().Format(api.ExportTimeFormat),
			time.UnixMilli(r.to).UTC().Format(api.ExportTimeFormat))
	}
	fmt.Fprintf(&b, "%d rows: %d verified, %d failed; ", r.rows, r.rows-r.failed, r.failed)
	switch {
	case r.complete():
		fmt.Fprintf(&b, "complete: %d rows as declared, SHA-256 matches; ", r.declared)
	case r.declared != uint64(r.rows):
		fmt.Fprintf(&b, "INCOMPLETE: the end line declares %d rows; ", r.declared)
	default:
		b.WriteString("ALTERED: the SHA-256 does not match the end line; ")
	}
	b.WriteString("server signature: " + r.signature)
	return b.String()
}

func (r result) verdict() string {
	var why []string
	if r.failed > 0 {
		why = append(why, fmt.Sprintf("%d of %d rows failed", r.failed, r.rows))
	}
	if !r.complete() {
		why = append(why, "the file is not as exported")
	}
	if r.signatureFails {
		why = append(why, "server signature "+r.signature)
	}
	return strings.Join(why, "; ")
}

// lineReader reads an export line by line, hashing every byte it reads
// until told to stop.
type lineReader struct {
	r       *bufio.Reader
	sum     [sha256.Size]byte
	hashing bool
	h       hashState
	n       int // lines read
}

type hashState interface {
	io.Writer
	Sum([]byte) []byte
}

// next returns the next line without its line ending, and io.EOF at the
// end of the file.
func (lr *lineReader) next() (string, error) {
	raw, err := lr.r.ReadBytes('\n')
	if len(raw) == 0 && err != nil {
		return "", err
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	lr.n++
	line := string(bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r")))
	if strings.HasPrefix(line, "# end,") {
		lr.hashing = false
		copy(lr.sum[:], lr.h.Sum(nil))
	}
	if lr.hashing {
		lr.h.Write(raw)
	}
	return line, nil
}

// check reads and checks an export. It returns an error for a file that
// is not an export at all: it lacks or garbles its frame, or its columns
// are not the export's. Everything else is in the result.
func (v *verifier) check(in io.Reader) (result, error) {
	lr := &lineReader{r: bufio.NewReaderSize(in, 64<<10), hashing: true, h: sha256.New()}
	var res result
	line, err := lr.next()
	if errors.Is(err, io.EOF) {
		return res, errors.New("empty file: want an export")
	}
	if err != nil {
		return res, err
	}
	if line != api.ExportVersionLine {
		return res, fmt.Errorf("line 1 is %.60q, not %q: not an export of this version (export the meter again)", line, api.ExportVersionLine)
	}
	if line, err = lr.next(); err != nil {
		return res, fmt.Errorf("line 2: %w", eof(err))
	}
	if res.meterID, res.username, err = api.ParseMeterLine(line); err != nil {
		return res, fmt.Errorf("line 2: %v", err)
	}
	if line, err = lr.next(); err != nil {
		return res, fmt.Errorf("line %d: %w", lr.n, eof(err))
	}
	res.from, res.to = math.MinInt64, math.MaxInt64
	if api.IsRangeLine(line) {
		if res.from, res.to, err = api.ParseRangeLine(line); err != nil {
			return res, fmt.Errorf("line %d: %v", lr.n, err)
		}
		res.ranged = true
		if line, err = lr.next(); err != nil {
			return res, fmt.Errorf("line %d: %w", lr.n, eof(err))
		}
	}
	keys := map[string]*key{} // by base64 DER
	for strings.HasPrefix(line, "# key,") {
		k, err := v.parseKey(line)
		if err != nil {
			return res, fmt.Errorf("line %d: %v", lr.n, err)
		}
		if keys[k.Base64PublicKey] != nil {
			return res, fmt.Errorf("line %d: key %s declared twice", lr.n, k.Fingerprint)
		}
		keys[k.Base64PublicKey] = k
		if line, err = lr.next(); err != nil {
			return res, fmt.Errorf("line %d: %w", lr.n, eof(err))
		}
	}
	if len(keys) == 0 {
		return res, fmt.Errorf("line %d: the file declares no key of the meter", lr.n)
	}
	if err := checkColumns(line); err != nil {
		return res, fmt.Errorf("line %d: %v", lr.n, err)
	}
	prev := int64(-1)
	for {
		if line, err = lr.next(); err != nil {
			return res, fmt.Errorf("line %d: %w", lr.n, eof(err))
		}
		if strings.HasPrefix(line, "# end,") {
			break
		}
		res.rows++
		if err := v.checkRow(line, &res, keys, &prev); err != nil {
			res.failed++
			fmt.Fprintf(v.out, "line %d: %v\n", lr.n, err)
		}
	}
	declared, digest, err := api.ParseEndLine(line)
	if err != nil {
		return res, fmt.Errorf("line %d: %v", lr.n, err)
	}
	res.declared = declared
	res.digestOK = digest == hex.EncodeToString(lr.sum[:])
	res.signature, res.signatureFails = v.checkSignature(lr, declared)
	return res, nil
}

// eof turns the end of the file where more is due into a plain error.
func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("the file ends before its end line: it is truncated")
	}
	return err
}

func (v *verifier) parseKey(line string) (*key, error) {
	ek, err := api.ParseKeyLine(line)
	if err != nil {
		return nil, err
	}
	pub, err := crypto.ParsePublicKey(ek.Base64PublicKey, v.minRSABits)
	if err != nil {
		return nil, fmt.Errorf("key %d: %v", ek.Seq, err)
	}
	if pub.Fingerprint().String() != ek.Fingerprint || pub.Algorithm() != ek.Algorithm {
		return nil, fmt.Errorf("key %d: fingerprint or algorithm is not the key's", ek.Seq)
	}
	return &key{ExportKey: ek, parsed: pub}, nil
}

// checkColumns fails unless header is exactly the export's columns.
func checkColumns(header string) error {
	got, err := csv.NewReader(strings.NewReader(header)).Read()
	if err != nil {
		return fmt.Errorf("column header: %v", err)
	}
	want := api.ExportColumns
	seen := map[string]bool{}
	for _, c := range got {
		if seen[c] {
			return fmt.Errorf("column %q appears twice; an export has exactly %s", c, strings.Join(want, ","))
		}
		seen[c] = true
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("columns %s; an export has exactly %s, in that order", strings.Join(got, ","), strings.Join(want, ","))
	}
	return nil
}

// checkRow checks one row: the meter's, signed by one of its keys (a
// pinned one, if any are), received while that key was the meter's, after
// the row before it in time, every value written as the export writes it.
func (v *verifier) checkRow(line string, res *result, keys map[string]*key, prev *int64) error {
	meterID, username := res.meterID, res.username
	f, err := csv.NewReader(strings.NewReader(line)).Read()
	if err != nil {
		return fmt.Errorf("not a CSV row: %v", err)
	}
	if len(f) != len(api.ExportColumns) {
		return fmt.Errorf("%d fields, want %d", len(f), len(api.ExportColumns))
	}
	var r crypto.Reading
	for i, dst := range []*int64{&r.Timestamp, &r.WhIn, &r.WhOut} {
		n, err := api.ParseCanonicalInt(f[4+i])
		if err != nil || n < 0 {
			return fmt.Errorf("%s %q is not a whole number as the export writes one", api.ExportColumns[4+i], f[4+i])
		}
		*dst = n
	}
	// Order first, so that a row out of place is named whatever else is
	// wrong with it.
	if r.Timestamp <= *prev {
		at := *prev
		*prev = max(*prev, r.Timestamp)
		return fmt.Errorf("timestamp %d is not after the row before (%d): rows are out of order or repeated", r.Timestamp, at)
	}
	*prev = r.Timestamp
	if r.Timestamp < res.from || r.Timestamp >= res.to {
		return fmt.Errorf("timestamp %d is outside the file's range [%d, %d)", r.Timestamp, res.from, res.to)
	}
	id, err := api.ParseCanonicalInt(f[0])
	if err != nil || id != meterID {
		return fmt.Errorf("meter_id %q: the file is meter %d's", f[0], meterID)
	}
	if f[1] != username {
		return fmt.Errorf("username %q: the file is %s's", f[1], username)
	}
	k := keys[f[3]]
	if k == nil {
		return fmt.Errorf("signed by a key that is not one of meter %d's", meterID)
	}
	if f[2] != k.Algorithm {
		return fmt.Errorf("algorithm %q, but key %d is %s", f[2], k.Seq, k.Algorithm)
	}
	if v.pins != nil && !v.pins[k.parsed.Fingerprint()] {
		return fmt.Errorf("signed by key %s, not a key you pinned", k.Fingerprint)
	}
	sig, err := crypto.DecodeSignature(f[7])
	if err != nil {
		return err
	}
	if err := k.parsed.Verify(r, sig); err != nil {
		return err
	}
	received, err := api.ParseExportTime(f[8])
	if err != nil {
		return fmt.Errorf("received_at: %v", err)
	}
	if received.Before(k.AddedAt) || (k.RetiredAt != nil && received.After(*k.RetiredAt)) {
		return fmt.Errorf("received at %s, when key %d was not the meter's (%s to %s)", f[8], k.Seq,
			k.AddedAt.Format(api.ExportTimeFormat), retiredText(k.RetiredAt))
	}
	return nil
}

func retiredText(t *time.Time) string {
	if t == nil {
		return "now"
	}
	return t.Format(api.ExportTimeFormat)
}

// checkSignature reads what follows the end line: the server's signature,
// and nothing after it. It returns what to report, and whether that is a
// failure: with --server-key the signature must be there and verify.
func (v *verifier) checkSignature(lr *lineReader, rows uint64) (string, bool) {
	line, err := lr.next()
	if errors.Is(err, io.EOF) {
		if v.serverKey != nil {
			return "missing", true
		}
		return "missing (not asked for)", false
	}
	if err != nil {
		return err.Error(), true
	}
	if _, err := lr.next(); !errors.Is(err, io.EOF) {
		return fmt.Sprintf("line %d: more follows the signature line", lr.n), true
	}
	alg, fp, b64, err := api.ParseSignatureLine(line)
	if err != nil {
		return fmt.Sprintf("line %d: %v", lr.n, err), true
	}
	if v.serverKey == nil {
		return fmt.Sprintf("not checked (%s key %s; pass --server-key to check it)", alg, fp), false
	}
	if fp != v.serverKey.Fingerprint().String() {
		return fmt.Sprintf("made by key %s, not by the server key you gave (%s)", fp, v.serverKey.Fingerprint()), true
	}
	sig, err := crypto.DecodeSignature(b64)
	if err != nil {
		return err.Error(), true
	}
	if err := v.serverKey.VerifyExport(lr.sum, rows, sig); err != nil {
		return "does not verify: the row count or the content is not what the server signed", true
	}
	return fmt.Sprintf("verified (%s key %s)", alg, fp), false
}
