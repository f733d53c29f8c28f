package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A meter's export (GET /meters/{id}/export.csv) is a CSV file (RFC 4180,
// CRLF line endings) of the meter's readings in time order, framed by
// comment lines that open with "# ":
//
//	# smartmeters export 2
//	# meter,ID,USERNAME
//	# range,FROM,TO   (only in an export of part of the readings)
//	# key,SEQ,FINGERPRINT,ALGORITHM,BASE64_PUBLIC_KEY,ADDED_AT,RETIRED_AT   (one per key the meter has had)
//	meter_id,username,algorithm,base64_public_key,timestamp,wh_in,wh_out,base64_signature,received_at
//	…one row per reading…
//	# end,ROWS,SHA256
//	# signature,ALGORITHM,FINGERPRINT,BASE64_SIGNATURE
//
// FROM and TO bound the timestamp column, in its format (Unix
// milliseconds): the file holds every reading with FROM <= timestamp < TO.
// Without a range line it holds every reading of the meter.
//
// SHA256 is the hex SHA-256 of every byte of the file before the end line,
// and ROWS the number of readings; the signature line is the server's
// signature of crypto.ExportMessage(SHA256, ROWS) by the key GET
// /signing-key publishes. Times are ExportTimeFormat; RETIRED_AT is empty
// for the meter's current key; a key was the meter's from ADDED_AT to
// RETIRED_AT, both included, and every row's received_at lies within the
// validity of the key on its row.

// The columns of GET /meters/{id}/export.csv.
const (
	ColMeterID    = "meter_id"
	ColUsername   = "username"
	ColAlgorithm  = "algorithm"
	ColPublicKey  = "base64_public_key"
	ColTimestamp  = "timestamp"
	ColWhIn       = "wh_in"
	ColWhOut      = "wh_out"
	ColSignature  = "base64_signature"
	ColReceivedAt = "received_at"
)

// ExportColumns are the columns of an export, exactly and in order. Each
// row carries the public key that signed it and that key's algorithm, so
// that every row can be verified on its own: the signature is over
// timestamp, wh_in and wh_out exactly as written (timestamp in Unix
// milliseconds, the meter's clock).
var ExportColumns = []string{
	ColMeterID, ColUsername, ColAlgorithm, ColPublicKey,
	ColTimestamp, ColWhIn, ColWhOut, ColSignature, ColReceivedAt,
}

// ExportTimeFormat is the one format of the export's times (received_at,
// and the keys' validity): RFC 3339 in UTC with milliseconds.
const ExportTimeFormat = "2006-01-02T15:04:05.000Z"

// Lines of an export's frame.
const (
	ExportVersionLine = "# smartmeters export 2"
	exportMeter       = "# meter,"
	exportRange       = "# range,"
	exportKey         = "# key,"
	exportEnd         = "# end,"
	exportSignature   = "# signature,"
)

// ExportKey is one key of the meter an export is of.
type ExportKey struct {
	Seq             int
	Fingerprint     string // hex
	Algorithm       string
	Base64PublicKey string
	AddedAt         time.Time
	RetiredAt       *time.Time // nil for the current key
}

// MeterLine returns the export line naming meter id.
func MeterLine(id int64, username string) string {
	return exportMeter + strconv.FormatInt(id, 10) + "," + username
}

// RangeLine returns the export line saying that the file holds the
// readings with from <= timestamp < to (Unix milliseconds).
func RangeLine(from, to int64) string {
	return exportRange + strconv.FormatInt(from, 10) + "," + strconv.FormatInt(to, 10)
}

// IsRangeLine reports whether line is an export's range line.
func IsRangeLine(line string) bool { return strings.HasPrefix(line, exportRange) }

// ParseRangeLine reads a range line.
func ParseRangeLine(line string) (from, to int64, err error) {
	f, err := frameFields(line, exportRange, 2)
	if err != nil {
		return 0, 0, err
	}
	if from, err = ParseCanonicalInt(f[0]); err != nil {
		return 0, 0, fmt.Errorf("range start: %v", err)
	}
	if to, err = ParseCanonicalInt(f[1]); err != nil {
		return 0, 0, fmt.Errorf("range end: %v", err)
	}
	if to <= from {
		return 0, 0, fmt.Errorf("range end %d is not after its start %d", to, from)
	}
	return from, to, nil
}

// KeyLine returns the export line of key k.
func KeyLine(k ExportKey) string {
	retired := ""
	if k.RetiredAt != nil {
		retired = k.RetiredAt.UTC().Format(ExportTimeFormat)
	}
	return fmt.Sprintf("%s%d,%s,%s,%s,%s,%s", exportKey, k.Seq, k.Fingerprint, k.Algorithm, k.Base64PublicKey,
		k.AddedAt.UTC().Format(ExportTimeFormat), retired)
}

// EndLine returns the export line that closes rows readings whose bytes,
// everything before the line, have the hex SHA-256 digest.
func EndLine(rows uint64, digest string) string {
	return exportEnd + strconv.FormatUint(rows, 10) + "," + digest
}

// SignatureLine returns the export line of the server's signature.
func SignatureLine(algorithm, fingerprint, sig string) string {
	return exportSignature + algorithm + "," + fingerprint + "," + sig
}

// ParseMeterLine reads a meter line.
func ParseMeterLine(line string) (id int64, username string, err error) {
	f, err := frameFields(line, exportMeter, 2)
	if err != nil {
		return 0, "", err
	}
	if id, err = ParseCanonicalInt(f[0]); err != nil || id <= 0 {
		return 0, "", fmt.Errorf("meter id %q is not a positive integer", f[0])
	}
	return id, f[1], nil
}

// ParseKeyLine reads a key line.
func ParseKeyLine(line string) (ExportKey, error) {
	f, err := frameFields(line, exportKey, 6)
	if err != nil {
		return ExportKey{}, err
	}
	seq, err := ParseCanonicalInt(f[0])
	if err != nil || seq <= 0 || seq > 1<<31-1 {
		return ExportKey{}, fmt.Errorf("key number %q is not a positive integer", f[0])
	}
	k := ExportKey{Seq: int(seq), Fingerprint: f[1], Algorithm: f[2], Base64PublicKey: f[3]}
	if k.AddedAt, err = ParseExportTime(f[4]); err != nil {
		return ExportKey{}, fmt.Errorf("key %d added: %v", seq, err)
	}
	if f[5] != "" {
		t, err := ParseExportTime(f[5])
		if err != nil {
			return ExportKey{}, fmt.Errorf("key %d retired: %v", seq, err)
		}
		k.RetiredAt = &t
	}
	return k, nil
}

// ParseEndLine reads an end line.
func ParseEndLine(line string) (rows uint64, digest string, err error) {
	f, err := frameFields(line, exportEnd, 2)
	if err != nil {
		return 0, "", err
	}
	n, err := ParseCanonicalInt(f[0])
	if err != nil || n < 0 {
		return 0, "", fmt.Errorf("row count %q is not a whole number", f[0])
	}
	return uint64(n), f[1], nil
}

// ParseSignatureLine reads a signature line.
func ParseSignatureLine(line string) (algorithm, fingerprint, sig string, err error) {
	f, err := frameFields(line, exportSignature, 3)
	if err != nil {
		return "", "", "", err
	}
	return f[0], f[1], f[2], nil
}

// IsFrameLine reports whether line is one of an export's comment lines.
func IsFrameLine(line string) bool { return strings.HasPrefix(line, "# ") }

func frameFields(line, prefix string, n int) ([]string, error) {
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok {
		return nil, fmt.Errorf("want a line starting %q", prefix)
	}
	f := strings.Split(rest, ",")
	if len(f) != n {
		return nil, fmt.Errorf("%q line has %d fields, want %d", strings.TrimSpace(prefix), len(f), n)
	}
	return f, nil
}

// ParseCanonicalInt parses s as a signed decimal int64 written the one way
// the export writes it: no sign for a positive number, no leading zero, no
// spaces. "+1000", "01000" and "1e3" are refused, so that one value has
// one spelling.
func ParseCanonicalInt(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%q is not an integer as the export writes one", s)
	}
	return n, nil
}

// ParseExportTime parses s as ExportTimeFormat, exactly.
func ParseExportTime(s string) (time.Time, error) {
	t, err := time.Parse(ExportTimeFormat, s)
	if err != nil || t.Format(ExportTimeFormat) != s {
		return time.Time{}, fmt.Errorf("%q is not a time written as %s", s, ExportTimeFormat)
	}
	return t, nil
}

// PathSigningKey is the admin route that publishes the server's export
// signing key.
const PathSigningKey = "/signing-key"

// SigningKey is the answer of GET /signing-key: the public half of the key
// whose signature ends every export.
type SigningKey struct {
	Algorithm       string `json:"algorithm"`
	Base64PublicKey string `json:"base64PublicKey"`
	Fingerprint     string `json:"fingerprint"`
}
