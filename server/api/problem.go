package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ProblemTypePrefix starts every problem type URI. The suffixes (slugs)
// are a public interface: clients branch on them.
const ProblemTypePrefix = "urn:smartmeters:problem:"

// Kind is one cause of failure, with its stable problem type slug, title
// and HTTP status.
type Kind struct {
	Slug   string
	Title  string
	Status int
}

// Type returns the problem type URI of k.
func (k Kind) Type() string { return ProblemTypePrefix + k.Slug }

// The causes a client can be told about. README lists them all.
var (
	MalformedRequest  = Kind{"malformed-request", "Request body is not the expected JSON", http.StatusBadRequest}
	InvalidField      = Kind{"invalid-field", "A field is missing or out of range", http.StatusBadRequest}
	InvalidParameter  = Kind{"invalid-parameter", "A query parameter is malformed or out of range", http.StatusBadRequest}
	InvalidKey        = Kind{"invalid-key", "Public key is malformed or not accepted", http.StatusBadRequest}
	InvalidSignature  = Kind{"invalid-signature", "Signature does not verify", http.StatusBadRequest}
	UnknownKey        = Kind{"unknown-key", "Public key is not registered", http.StatusForbidden}
	KeyRevoked        = Kind{"key-revoked", "Public key has been revoked", http.StatusForbidden}
	AdminForbidden    = Kind{"admin-forbidden", "Address not allowed on the admin listener", http.StatusForbidden}
	NotFound          = Kind{"not-found", "No such resource", http.StatusNotFound}
	MethodNotAllowed  = Kind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}
	UsernameTaken     = Kind{"username-taken", "Username is already registered", http.StatusConflict}
	KeyTaken          = Kind{"key-taken", "Public key is already registered", http.StatusConflict}
	AlreadyRevoked    = Kind{"already-revoked", "The meter's key is already revoked", http.StatusConflict}
	ReadingConflict   = Kind{"reading-conflict", "A different reading is stored for this meter and timestamp", http.StatusConflict}
	BodyTooLarge      = Kind{"body-too-large", "Request body is too large", http.StatusRequestEntityTooLarge}
	BatchTooLarge     = Kind{"batch-too-large", "Too many readings in one request", http.StatusRequestEntityTooLarge}
	UnsupportedMedia  = Kind{"unsupported-media-type", "Content-Type must be application/json", http.StatusUnsupportedMediaType}
	TimestampFuture   = Kind{"timestamp-in-future", "Reading timestamp is ahead of the server clock", http.StatusUnprocessableEntity}
	RegisterDecreased = Kind{"register-decreased", "Reading would make a cumulative register decrease", http.StatusUnprocessableEntity}
	RateLimited       = Kind{"rate-limited", "Too many requests; slow down", http.StatusTooManyRequests}
	Overloaded        = Kind{"overloaded", "Too many requests in progress; retry", http.StatusServiceUnavailable}
	Unavailable       = Kind{"unavailable", "Service temporarily unavailable", http.StatusServiceUnavailable}
	Internal          = Kind{"internal", "Internal error", http.StatusInternalServerError}
)

// Problem is an RFC 9457 problem detail. The server returns it as an error
// and renders it as application/problem+json; a batch result carries its
// fields.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`

	// RetryAfter, when positive, is how long a client should wait before
	// it retries a 429 or 503; it travels as the Retry-After header
	// (whole seconds, rounded up), never in the body.
	RetryAfter time.Duration `json:"-"`
}

// Errorf returns a Problem of kind k with a detail formatted from format
// and args.
func Errorf(k Kind, format string, args ...any) *Problem {
	return &Problem{Type: k.Type(), Title: k.Title, Status: k.Status, Detail: fmt.Sprintf(format, args...)}
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }

// Slug is the stable last part of the problem type, such as "unknown-key".
func (p *Problem) Slug() string { return Slug(p.Type) }

// Slug returns the slug of a problem type URI, or "" for a type that is not
// one of ours.
func Slug(typ string) string {
	s, ok := strings.CutPrefix(typ, ProblemTypePrefix)
	if !ok {
		return ""
	}
	return s
}

// ParseMeterID parses the {id} of a /meters/{id} path, or returns a
// not-found problem.
func ParseMeterID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, Errorf(NotFound, "no meter %q", s)
	}
	return id, nil
}
