package crypto

import (
	"encoding/binary"
	"time"
)

// Reading is one meter reading: the cumulative import and export registers
// in Wh and the time of the reading in Unix milliseconds. It is the one
// reading type used by the server, the store and the simulator.
type Reading struct {
	WhIn      int64 `json:"whIn"`
	WhOut     int64 `json:"whOut"`
	Timestamp int64 `json:"timestamp"`
}

// MessageSize is the length in bytes of the signed form of a Reading.
const MessageSize = 28

// messageTag opens every signed message; it names the format and its
// version, so a signature over any other structure can never verify.
const messageTag = "SMR1"

// Message returns the exact bytes a meter signs for r: "SMR1", then WhIn,
// WhOut and Timestamp, each as a big-endian two's complement int64. It
// returns an array so that signing and verifying do not allocate.
func (r Reading) Message() [MessageSize]byte {
	var m [MessageSize]byte
	copy(m[0:4], messageTag)
	binary.BigEndian.PutUint64(m[4:12], uint64(r.WhIn))
	binary.BigEndian.PutUint64(m[12:20], uint64(r.WhOut))
	binary.BigEndian.PutUint64(m[20:28], uint64(r.Timestamp))
	return m
}

// Time returns the instant of the reading, r.Timestamp interpreted as Unix
// milliseconds, in UTC.
func (r Reading) Time() time.Time {
	return time.UnixMilli(r.Timestamp).UTC()
}
