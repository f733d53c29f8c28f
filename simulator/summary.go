package simulator

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Summary is the outcome of a run. Its JSON form is a public interface:
// field names do not change.
//
// Readings are counted once each, however many attempts they took. The
// genuine readings split into Accepted, Duplicates, Rejected, Failed and
// Interrupted; forged readings are counted apart, in Tamper.
type Summary struct {
	Seed          int64   `json:"seed"`           // the seed used, also when picked at random
	KeyType       string  `json:"key_type"`       // the key type of the meters
	Meters        int     `json:"meters"`         // meters that reported
	Registered    int     `json:"registered"`     // meters registered by this run; 0 when loaded from a keys file
	KeysFile      string  `json:"keys_file"`      // the keys file, if any
	RegistrationS float64 `json:"registration_s"` // time spent generating, registering or loading the fleet

	Attempted int64 `json:"attempted"` // genuine readings sent
	// Accepted counts genuine readings the server stored for this run: a
	// 201, or a 200 duplicate answering a retry, which means an earlier
	// attempt was stored and its answer lost.
	Accepted int64 `json:"accepted"`
	// Duplicates counts genuine readings answered 200 duplicate on the
	// first attempt: the store held them before this run sent them.
	Duplicates int64 `json:"duplicates"`
	// Rejected counts genuine readings with a final 4xx answer, and
	// RejectedByReason splits them by problem type slug (the part after
	// urn:smartmeters:problem:), such as "unknown-key".
	Rejected         int64            `json:"rejected"`
	RejectedByReason map[string]int64 `json:"rejected_by_reason"`
	// Failed counts genuine readings that got no final answer: network
	// errors, 5xx or 429 until the attempts ran out. LastError is why the
	// last of them failed (the error of its last attempt); empty when
	// none did.
	Failed    int64  `json:"failed"`
	LastError string `json:"last_error,omitempty"`
	// Interrupted counts genuine readings still unanswered when the run
	// was stopped.
	Interrupted int64 `json:"interrupted"`
	Retries     int64 `json:"retries"` // attempts after the first, forged readings included

	LatencyMS     Percentiles `json:"latency_ms"`      // per HTTP exchange that got an answer
	ScheduleLagMS Percentiles `json:"schedule_lag_ms"` // first send time minus due time, per reading
	RatePerS      float64     `json:"rate_per_s"`      // readings, forged included, finished per second
	DurationS     float64     `json:"duration_s"`      // length of the reporting phase

	Tamper TamperSummary `json:"tamper"`
}

// TamperSummary tells how the server answered forged readings.
type TamperSummary struct {
	Fraction float64 `json:"fraction"` // the share of readings forged on purpose
	Sent     int64   `json:"sent"`     // forged readings sent
	// Accepted counts forged readings the server stored or called a
	// duplicate. Any makes the run fail.
	Accepted int64                 `json:"accepted"`
	Kinds    map[string]TamperKind `json:"kinds"` // by kind: bad-signature, unknown-key, replay
}

// TamperKind is how the server answered one kind of forgery.
type TamperKind struct {
	Sent     int64  `json:"sent"`
	Expected string `json:"expected"` // the problem type slug a correct server answers
	// Answers counts the final answers by problem type slug, or "stored",
	// "duplicate", "failed" or "interrupted".
	Answers map[string]int64 `json:"answers"`
}

// NotAccepted returns the number of genuine readings that were sent but
// are not known to be stored.
func (s *Summary) NotAccepted() int64 {
	return s.Rejected + s.Failed + s.Interrupted
}

// Err returns nil for a successful run, or a one-line error saying how many
// genuine readings were not accepted and why, with the error that made
// the last failed one fail, and how many forged readings were accepted.
func (s *Summary) Err() error {
	var parts []string
	if n := s.NotAccepted(); n > 0 {
		reasons := s.reasons()
		if s.Failed > 0 && s.LastError != "" {
			reasons += "; last error: " + oneLine(s.LastError)
		}
		parts = append(parts, fmt.Sprintf("%d of %d readings were not accepted (%s)", n, s.Attempted, reasons))
		if s.KeysFile != "" && s.Registered == 0 && s.RejectedByReason["unknown-key"] == s.Attempted {
			parts = append(parts, "are the meters of "+s.KeysFile+" registered on this server?")
		}
	}
	if s.Tamper.Accepted > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d forged readings were accepted by the server", s.Tamper.Accepted, s.Tamper.Sent))
	}
	if len(parts) == 0 {
		return nil
	}
	return errors.New(strings.Join(parts, "; "))
}

// reasons lists why readings were not accepted, most frequent first.
func (s *Summary) reasons() string {
	counts := maps.Clone(s.RejectedByReason)
	if counts == nil {
		counts = map[string]int64{}
	}
	if s.Failed > 0 {
		counts["failed"] = s.Failed
	}
	if s.Interrupted > 0 {
		counts["interrupted"] = s.Interrupted
	}
	return formatCounts(counts)
}

// oneLine keeps an error message on one line, whatever a server put in
// the detail it quotes.
func oneLine(msg string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(msg)
}

// formatCounts renders counts as "a 3, b 1", largest first.
func formatCounts(counts map[string]int64) string {
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// WriteText writes s for people, one topic per line.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-16s%s\n", label, fmt.Sprintf(format, args...))
	}
	fleet := fmt.Sprintf("registered %d in %.1fs", s.Registered, s.RegistrationS)
	if s.Registered == 0 && s.KeysFile != "" {
		fleet = fmt.Sprintf("loaded from %s in %.1fs", s.KeysFile, s.RegistrationS)
	}
	line("meters", "%d %s (%s, seed %d)", s.Meters, s.KeyType, fleet, s.Seed)
	line("readings", "%d attempted, %d accepted, %d already stored, %d rejected, %d failed, %d interrupted",
		s.Attempted, s.Accepted, s.Duplicates, s.Rejected, s.Failed, s.Interrupted)
	if len(s.RejectedByReason) > 0 {
		line("  rejected", "%s", formatCounts(s.RejectedByReason))
	}
	line("retries", "%d", s.Retries)
	line("latency", "%s", s.LatencyMS)
	line("rate", "%.1f readings/s over %.1fs", s.RatePerS, s.DurationS)
	line("schedule lag", "%s", s.ScheduleLagMS)
	if s.Tamper.Fraction > 0 {
		line("tamper", "%d forged (%g of readings), %d accepted", s.Tamper.Sent, s.Tamper.Fraction, s.Tamper.Accepted)
		for _, name := range slices.Sorted(maps.Keys(s.Tamper.Kinds)) {
			k := s.Tamper.Kinds[name]
			line("  "+name, "%d sent, want %s, got %s", k.Sent, k.Expected, formatCounts(k.Answers))
		}
	}
	if err := s.Err(); err != nil {
		line("result", "FAILED: %v", err)
	} else {
		line("result", "ok")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// String renders p as "p50 1.2ms  p90 3.4ms  p99 8ms  max 12.1ms".
func (p Percentiles) String() string {
	return fmt.Sprintf("p50 %gms  p90 %gms  p99 %gms  max %gms", p.P50, p.P90, p.P99, p.Max)
}
