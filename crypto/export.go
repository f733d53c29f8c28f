package crypto

import (
	"crypto/sha256"
	"encoding/binary"
)

// ExportMessageSize is the length in bytes of the signed form of an
// export.
const ExportMessageSize = 4 + sha256.Size + 8

// exportTag opens every signed export: a reading's signature, which
// opens with "SMR1", can never pass for an export's, nor the reverse.
const exportTag = "SMX1"

// ExportMessage returns the exact bytes a server signs for an export of
// rows readings whose content has SHA-256 digest: "SMX1", the digest, and
// rows as a big-endian uint64.
func ExportMessage(digest [sha256.Size]byte, rows uint64) [ExportMessageSize]byte {
	var m [ExportMessageSize]byte
	copy(m[0:4], exportTag)
	copy(m[4:4+sha256.Size], digest[:])
	binary.BigEndian.PutUint64(m[4+sha256.Size:], rows)
	return m
}

// SignExport returns k's signature of ExportMessage(digest, rows), made as
// Sign makes a reading's.
func (k *PrivateKey) SignExport(digest [sha256.Size]byte, rows uint64) ([]byte, error) {
	msg := ExportMessage(digest, rows)
	return k.sign(msg[:])
}

// VerifyExport checks that sig is k's signature of ExportMessage(digest,
// rows), with the errors Verify returns.
func (k *PublicKey) VerifyExport(digest [sha256.Size]byte, rows uint64, sig []byte) error {
	msg := ExportMessage(digest, rows)
	return k.verify(msg[:], sig)
}
