package simulator

import (
	"bufio"
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"smartmeters/crypto"
)

// MeterKey is the identity of a simulated meter: its username and its
// private key.
type MeterKey struct {
	Username string
	Key      *crypto.PrivateKey
}

// keyFileHeader opens every keys file.
const keyFileHeader = "# smartmeters simulator keys: one PKCS#8 private key per meter,\n" +
	"# its username in the Username header. Keep this file private.\n"

const (
	pemPrivateKey  = "PRIVATE KEY"
	usernameHeader = "Username"
)

// SaveKeyFile writes meters to path as a keys file, atomically: a
// temporary file in the same directory, mode 0600, synced and renamed over
// path.
//
// A keys file is a sequence of PEM "PRIVATE KEY" blocks, one per meter, each
// holding the PKCS#8 DER key and a "Username" header; lines starting with
// # before the first block are comments:
//
//	# smartmeters simulator keys ...
//	-----BEGIN PRIVATE KEY-----
//	Username: meter-k3x9q0a7bc
//
//	MC4CAQAwBQYDK2VwBCIEIP3...
//	-----END PRIVATE KEY-----
func SaveKeyFile(path string, meters []MeterKey) error {
	f, err := createKeyFile(path)
	if err != nil {
		return err
	}
	return f.save(meters)
}

// pendingKeyFile is a keys file being written: a temporary file of mode
// 0600 in the directory of path, which save fills, syncs and renames over
// path, so that path never holds half a file. Creating it first tells,
// before any meter is registered, whether the keys can be saved at all.
type pendingKeyFile struct {
	path string
	tmp  *os.File
}

// createKeyFile creates the temporary file of a keys file at path. Its
// error names path, and the directory when that is what is wrong.
func createKeyFile(path string) (*pendingKeyFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		// The temporary file's name would only confuse: name the directory.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("directory %s: %w", filepath.Dir(path), pe.Err)
		}
		return nil, fmt.Errorf("keys file %s cannot be written: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	return &pendingKeyFile{path: path, tmp: f}, nil
}

// save writes meters to the temporary file and renames it over the keys
// file. On failure the temporary file is removed.
func (p *pendingKeyFile) save(meters []MeterKey) (err error) {
	defer func() {
		if err != nil {
			p.discard()
			err = fmt.Errorf("save keys file %s: %w", p.path, err)
		}
	}()
	bw := bufio.NewWriter(p.tmp)
	if _, err := io.WriteString(bw, keyFileHeader); err != nil {
		return err
	}
	for _, m := range meters {
		pemKey, err := m.Key.MarshalPKCS8PEM()
		if err != nil {
			return fmt.Errorf("meter %s: %w", m.Username, err)
		}
		block, _ := pem.Decode(pemKey)
		if block == nil {
			return fmt.Errorf("meter %s: the key did not encode as PEM", m.Username)
		}
		block.Headers = map[string]string{usernameHeader: m.Username}
		if err := pem.Encode(bw, block); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := p.tmp.Sync(); err != nil {
		return err
	}
	if err := p.tmp.Close(); err != nil {
		return err
	}
	return os.Rename(p.tmp.Name(), p.path)
}

// discard removes the temporary file, for a keys file that will not be
// saved.
func (p *pendingKeyFile) discard() {
	p.tmp.Close()
	os.Remove(p.tmp.Name())
}

// ErrNoKeyFile is returned by LoadKeyFile for a path where no file exists.
var ErrNoKeyFile = errors.New("no keys file")

// LoadKeyFile reads the meters of the keys file at path (see SaveKeyFile).
// It refuses, with an error naming the file and the line, anything but a
// well-formed file: unknown text, a truncated or corrupt block, a missing or
// invalid username, a duplicate username or key, no meters at all. On Unix
// it also refuses a file that others than its owner may read. A missing
// file yields an error wrapping ErrNoKeyFile.
func LoadKeyFile(path string) ([]MeterKey, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keys file %s: %w", path, ErrNoKeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("keys file %s: not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("keys file %s: mode %04o lets others read the private keys; run chmod 600 %s", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	meters, err := parseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	return meters, nil
}

// parseKeyFile parses the contents of a keys file.
func parseKeyFile(data []byte) ([]MeterKey, error) {
	var (
		meters    []MeterKey
		usernames = map[string]int{}
		keys      = map[crypto.Fingerprint]int{}
		lineNo    = 1
		rest      = data
	)
	// advance consumes n bytes of rest, keeping count of lines.
	advance := func(n int) {
		lineNo += bytes.Count(rest[:n], []byte("\n"))
		rest = rest[n:]
	}
	for {
		advance(len(rest) - len(bytes.TrimLeft(rest, " \t\r\n")))
		if len(rest) == 0 {
			break
		}
		if rest[0] == '#' && len(meters) == 0 {
			end := bytes.IndexByte(rest, '\n')
			if end < 0 {
				end = len(rest) - 1
			}
			advance(end + 1)
			continue
		}
		begin := "-----BEGIN " + pemPrivateKey + "-----"
		if !bytes.HasPrefix(rest, []byte(begin)) {
			return nil, fmt.Errorf("line %d: %q where a %q line should be", lineNo, firstLine(rest), begin)
		}
		endMarker := []byte("\n-----END " + pemPrivateKey + "-----")
		end := bytes.Index(rest, endMarker)
		if end < 0 {
			return nil, fmt.Errorf("line %d: PEM block is truncated: no END line", lineNo)
		}
		end += len(endMarker)
		block, tail := pem.Decode(rest[:end])
		if block == nil || len(bytes.TrimSpace(tail)) != 0 {
			return nil, fmt.Errorf("line %d: corrupt PEM block", lineNo)
		}
		m, err := parseKeyBlock(block)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		if at, dup := usernames[m.Username]; dup {
			return nil, fmt.Errorf("line %d: username %s appears twice (first on line %d)", lineNo, m.Username, at)
		}
		usernames[m.Username] = lineNo
		fp := m.Key.Public().Fingerprint()
		if at, dup := keys[fp]; dup {
			return nil, fmt.Errorf("line %d: the key of %s appears twice (first on line %d)", lineNo, m.Username, at)
		}
		keys[fp] = lineNo
		meters = append(meters, m)
		advance(end)
	}
	if len(meters) == 0 {
		return nil, errors.New("holds no keys")
	}
	return meters, nil
}

// parseKeyBlock parses one meter's PEM block.
func parseKeyBlock(block *pem.Block) (MeterKey, error) {
	username, ok := block.Headers[usernameHeader]
	if !ok {
		return MeterKey{}, fmt.Errorf("PEM block without a %q header", usernameHeader)
	}
	for h := range block.Headers {
		if h != usernameHeader {
			return MeterKey{}, fmt.Errorf("meter %s: unexpected PEM header %q", username, h)
		}
	}
	if err := ValidUsername(username); err != nil {
		return MeterKey{}, err
	}
	// crypto reads bare PKCS#8 blocks only.
	key, err := crypto.ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes}))
	if err != nil {
		return MeterKey{}, fmt.Errorf("meter %s: %w", username, err)
	}
	return MeterKey{Username: username, Key: key}, nil
}

// ValidUsername reports why u is not a valid meter username, or nil: 1 to
// 64 of A-Z a-z 0-9 . _ -.
func ValidUsername(u string) error {
	if u == "" || len(u) > 64 {
		return fmt.Errorf("username %q: want 1 to 64 characters", u)
	}
	for i := 0; i < len(u); i++ {
		switch c := u[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("username %q: %q at byte %d; only A-Z a-z 0-9 . _ - are allowed", u, rune(c), i)
		}
	}
	return nil
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(bytes.TrimRight(b, "\r"))
}
