package api

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

// ExportColumns are the columns of GET /meters/{id}/export.csv, in order.
// Each row carries the public key that verified it (after a key
// replacement, a meter's older readings carry its older key) and that key's
// algorithm, so that every row can be verified on its own: the signature is
// over timestamp, wh_in and wh_out exactly as written (timestamp in Unix
// milliseconds).
var ExportColumns = []string{
	ColMeterID, ColUsername, ColAlgorithm, ColPublicKey,
	ColTimestamp, ColWhIn, ColWhOut, ColSignature, ColReceivedAt,
}
