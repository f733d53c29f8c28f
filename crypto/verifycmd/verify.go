// Package verifycmd is `smartmeters verify`: the offline check of a
// meter's exported readings.
package verifycmd

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"

	"smartmeters/crypto"
	"smartmeters/server/api"
)

// verifyColumns are the columns verify needs, as GET
// /meters/{id}/export.csv writes them; other columns are ignored and the
// order does not matter.
var verifyColumns = []string{api.ColPublicKey, api.ColTimestamp, api.ColWhIn, api.ColWhOut, api.ColSignature}

// Command returns `smartmeters verify`.
func Command() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check every signature of an exported readings CSV, offline",
		ArgsUsage: "FILE",
		Description: "Reads a CSV from GET /meters/{id}/export.csv (\"-\" reads stdin) and verifies each row's\n" +
			"signature over timestamp, wh_in and wh_out with the row's public key. It names each row that\n" +
			"fails and why, prints a summary, and exits 1 when any row fails.",
		Flags: []cli.Flag{
			&cli.IntFlag{
				Name:    "min-rsa-bits",
				Value:   1024,
				Usage:   "smallest RSA modulus to accept; the check is of the signatures, not of the server's key policy",
				EnvVars: []string{"SMARTMETERS_VERIFY_MIN_RSA_BITS"},
			},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("verify takes exactly one FILE (see --help)", 2)
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
			sum, err := verifyCSV(in, c.Int("min-rsa-bits"), c.App.Writer)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			fmt.Fprintf(c.App.Writer, "%s: %d rows, %d verified, %d failed\n", name, sum.rows, sum.rows-sum.failed, sum.failed)
			if sum.failed > 0 {
				return cli.Exit(fmt.Sprintf("%s: %d of %d rows failed verification", name, sum.failed, sum.rows), 1)
			}
			return nil
		},
	}
}

type verifySummary struct{ rows, failed int }

// verifyCSV verifies every row of an export, writing one line to out per
// failing row. It returns an error only for a file that is not an export
// at all: unreadable CSV or missing columns.
func verifyCSV(in io.Reader, minRSABits int, out io.Writer) (verifySummary, error) {
	var sum verifySummary
	r := csv.NewReader(in)
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return sum, errors.New("empty file: want a header row")
	}
	if err != nil {
		return sum, fmt.Errorf("not a CSV file: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	idx := make([]int, len(verifyColumns))
	for i, name := range verifyColumns {
		j, ok := col[name]
		if !ok {
			return sum, fmt.Errorf("header lacks column %q", name)
		}
		idx[i] = j
	}
	keys := map[string]*crypto.PublicKey{} // parsed once per distinct key
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return sum, nil
		}
		if err != nil {
			return sum, fmt.Errorf("not a CSV file: %w", err)
		}
		line, _ := r.FieldPos(0)
		sum.rows++
		if err := verifyRow(rec, idx, keys, minRSABits); err != nil {
			sum.failed++
			fmt.Fprintf(out, "line %d: %v\n", line, err)
		}
	}
}

func verifyRow(rec []string, idx []int, keys map[string]*crypto.PublicKey, minRSABits int) error {
	b64Key := rec[idx[0]]
	key, ok := keys[b64Key]
	if !ok {
		var err error
		if key, err = crypto.ParsePublicKey(b64Key, minRSABits); err != nil {
			return fmt.Errorf("public key: %w", err)
		}
		keys[b64Key] = key
	}
	var r crypto.Reading
	for i, dst := range []*int64{&r.Timestamp, &r.WhIn, &r.WhOut} {
		v, err := strconv.ParseInt(rec[idx[1+i]], 10, 64)
		if err != nil {
			return fmt.Errorf("%s %q is not an integer", verifyColumns[1+i], rec[idx[1+i]])
		}
		*dst = v
	}
	sig, err := crypto.DecodeSignature(rec[idx[4]])
	if err != nil {
		return err
	}
	if err := key.Verify(r, sig); err != nil {
		return err
	}
	return nil
}
