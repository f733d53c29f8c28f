package api

import (
	"encoding/base64"
	"strconv"

	"smartmeters/crypto"
)

// Routes of the public listener.
const (
	PathReportReading  = "/reportReading"  // POST one ReportRequest
	PathReportReadings = "/reportReadings" // POST an array of ReportRequest
)

// ReportRequest is the body of POST /reportReading, and one element of the
// array of POST /reportReadings: a reading and its signature by the key
// given.
type ReportRequest struct {
	Base64PublicKey string       `json:"base64PublicKey"`
	Base64Signature string       `json:"base64Signature"`
	Reading         *ReadingJSON `json:"reading"`
}

// ReadingJSON is crypto.Reading on the wire. The pointers tell a missing
// or null field from a zero.
type ReadingJSON struct {
	WhIn      *int64 `json:"whIn"`
	WhOut     *int64 `json:"whOut"`
	Timestamp *int64 `json:"timestamp"`
}

// Report statuses: what the server did with a reading it accepted.
const (
	StatusStored    = "stored"    // newly committed: HTTP 201
	StatusDuplicate = "duplicate" // the identical reading was already stored: HTTP 200
)

// ReportResponse is the answer to a reading the server accepted.
type ReportResponse struct {
	Status    string `json:"status"` // StatusStored or StatusDuplicate
	MeterID   int64  `json:"meterId"`
	Timestamp int64  `json:"timestamp"`
}

// BatchResult is the outcome of one reading of POST /reportReadings: the
// status and body that POST /reportReading would have answered, flattened
// into one object with the HTTP status in Status.
type BatchResult struct {
	Status int `json:"status"`
	// On success:
	Result    string `json:"result,omitempty"` // StatusStored or StatusDuplicate
	MeterID   int64  `json:"meterId,omitempty"`
	Timestamp int64  `json:"timestamp,omitempty"`
	// On failure, the problem's fields:
	Type   string `json:"type,omitempty"`
	Title  string `json:"title,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// BatchResponse is the answer to POST /reportReadings: one result per
// reading, in the order sent.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// AppendReport appends the JSON body of POST /reportReading to b: the same
// object a ReportRequest encodes to, built without reflection for clients
// that send many. pub is the standard base64 of the key's DER. The base64
// alphabet and integers need no JSON escaping.
func AppendReport(b []byte, pub string, sig []byte, r crypto.Reading) []byte {
	b = append(b, `{"base64PublicKey":"`...)
	b = append(b, pub...)
	b = append(b, `","base64Signature":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	b = append(b, `","reading":{"whIn":`...)
	b = strconv.AppendInt(b, r.WhIn, 10)
	b = append(b, `,"whOut":`...)
	b = strconv.AppendInt(b, r.WhOut, 10)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, r.Timestamp, 10)
	return append(b, "}}"...)
}
