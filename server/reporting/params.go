package reporting

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
	"smartmeters/store/energy"
)

// Reporting limits shared by the query parameters.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	maxBuckets       = 10000
)

// buckets are the fixed bucket widths the consumption and fleet endpoints
// accept, by the name a client gives; "1mo", a calendar month, is the
// other.
var buckets = map[string]time.Duration{
	"1m":  time.Minute,
	"5m":  5 * time.Minute,
	"15m": 15 * time.Minute,
	"1h":  time.Hour,
	"1d":  24 * time.Hour,
}

// bucketNames lists the bucket names for messages.
const bucketNames = "1m, 5m, 15m, 1h, 1d, 1mo"

// bucketing is how a request cuts time into buckets: a width, or calendar
// months (width 0); days and months are those of loc, so that a day of a
// time zone that changes its clock has 23 or 25 hours, and a day it skips
// is no bucket (see calendarEdges). Buckets shorter than a day are
// aligned to the Unix epoch whatever loc is.
type bucketing struct {
	name  string
	width time.Duration
	loc   *time.Location
}

// calendar reports whether the buckets are days or months of loc rather
// than fixed runs of time since the epoch.
func (b bucketing) calendar() bool {
	return b.width == 0 || (b.width == 24*time.Hour && b.loc != time.UTC)
}

// edges returns the edges of the buckets that cover [from, to), widened
// outward to whole buckets, or an invalid-parameter problem when the
// window is empty or out of range, holds more than maxBuckets, or its
// buckets reach outside the years an answer can write.
func (b bucketing) edges(from, to time.Time) ([]time.Time, error) {
	if err := checkWindow(from, to); err != nil {
		return nil, err
	}
	var edges []time.Time
	if b.calendar() {
		var err error
		if edges, err = b.calendarEdges(from, to); err != nil {
			return nil, err
		}
	} else {
		// Whole buckets since the Unix epoch (Truncate counts from the
		// year 1, a whole number of days before it), so 1d buckets are
		// UTC days.
		from, to := from.Truncate(b.width), to
		if t := to.Truncate(b.width); t.Before(to) {
			to = t.Add(b.width)
		}
		if n := to.Sub(from) / b.width; n > maxBuckets {
			return nil, api.Errorf(api.InvalidParameter, "%d buckets asked for; at most %d", n, maxBuckets)
		}
		edges = energy.EvenEdges(from, to, b.width)
	}
	if err := b.checkEdges(edges); err != nil {
		return nil, err
	}
	return edges, nil
}

// checkEdges refuses buckets that an answer cannot write. Answers write
// every edge in RFC 3339, whose years have four digits, in the zone of the
// buckets (UTC for those shorter than a day): so the first edge must lie
// in the year 1 or later and the last in 9999 or before as written there.
// A day of UTC+14 can end in the year 10000 while UTC is still in 9999,
// and one of UTC-12 start in the year 0.
func (b bucketing) checkEdges(edges []time.Time) error {
	if first := edges[0]; first.Year() < 1 {
		return api.Errorf(api.InvalidParameter, "from: the first %s asked for starts at %s, before the year 1",
			b.unit(), first.Format(time.RFC3339))
	}
	if last := edges[len(edges)-1]; last.Year() > 9999 {
		return api.Errorf(api.InvalidParameter, "to: the last %s asked for ends at %s, after the year 9999",
			b.unit(), last.Format(time.RFC3339))
	}
	return nil
}

// unit names a bucket for messages: "day of Pacific/Apia", "15m bucket".
func (b bucketing) unit() string {
	switch {
	case b.width == 0:
		return "month of " + b.loc.String()
	case b.calendar():
		return "day of " + b.loc.String()
	}
	return b.name + " bucket"
}

// queryParams reads a request's query parameters; the first bad one becomes
// an invalid-parameter problem, kept in err so that a handler checks once.
type queryParams struct {
	c   echo.Context
	err error
}

func (q *queryParams) fail(name, format string, args ...any) {
	if q.err == nil {
		q.err = api.Errorf(api.InvalidParameter, "%s: "+format, append([]any{name}, args...)...)
	}
}

// time parses name as RFC 3339 or as Unix milliseconds; def when absent.
func (q *queryParams) time(name string, def time.Time) time.Time {
	v := q.c.QueryParam(name)
	if v == "" {
		return def
	}
	t, err := parseTime(v)
	if err != nil {
		q.fail(name, "%q is neither RFC 3339 nor Unix milliseconds", v)
		return def
	}
	return t
}

func parseTime(v string) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// int parses name as an integer in [lo, hi]; def when absent.
func (q *queryParams) int(name string, def, lo, hi int64) int64 {
	v := q.c.QueryParam(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		q.fail(name, "%q is not an integer from %d to %d", v, lo, hi)
		return def
	}
	return n
}

// duration parses name as a Go duration such as 60s or 5m in [lo, hi].
func (q *queryParams) duration(name string, def, lo, hi time.Duration) time.Duration {
	v := q.c.QueryParam(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		q.fail(name, "%q is not a duration from %s to %s", v, lo, hi)
		return def
	}
	return d
}

// bucket parses name as one of the bucket names and tz as an IANA time
// zone (UTC when absent) for its days and months.
func (q *queryParams) bucket(name, def string) bucketing {
	v := q.c.QueryParam(name)
	if v == "" {
		v = def
	}
	b := bucketing{name: v, loc: time.UTC}
	if tz := q.c.QueryParam("tz"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil || tz == "Local" {
			q.fail("tz", "%q is not an IANA time zone such as Europe/Berlin", tz)
		} else {
			b.loc = loc
		}
	}
	if v == "1mo" {
		return b
	}
	d, ok := buckets[v]
	if !ok {
		q.fail(name, "%q is not one of %s", v, bucketNames)
		return bucketing{name: def, width: buckets[def], loc: time.UTC}
	}
	b.width = d
	return b
}

// window reads bucket, tz, from and to: the buckets of [from, to),
// widened outward to whole buckets; by default def buckets over the span
// before now. It returns the bucketing and the buckets' edges, or the
// first bad parameter's problem.
func (q *queryParams) window(def string, span time.Duration, now time.Time) (bucketing, []time.Time, error) {
	b := q.bucket("bucket", def)
	to := q.time("to", now)
	from := q.time("from", to.Add(-span))
	if q.err != nil {
		return b, nil, q.err
	}
	edges, err := b.edges(from, to)
	return b, edges, err
}

// usernamePrefix returns name as the start of a username: at most 64 of
// A-Z a-z 0-9 . _ -, as usernames are; "" when absent.
func (q *queryParams) usernamePrefix(name string) string {
	v := q.c.QueryParam(name)
	if len(v) > 64 {
		q.fail(name, "is %d bytes long; usernames have at most 64", len(v))
		return ""
	}
	for i := 0; i < len(v); i++ {
		switch ch := v[i]; {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9', ch == '.', ch == '_', ch == '-':
		default:
			q.fail(name, "has %q at byte %d; usernames hold only A-Z a-z 0-9 . _ -", rune(ch), i)
			return ""
		}
	}
	return v
}

// The times a window may span, end excluded: those that JSON and RFC 3339
// can write, in four-digit years.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	endTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// checkWindow refuses a window [from, to) that is empty or reaches outside
// the years 1 to 9999, naming the parameter at fault.
func checkWindow(from, to time.Time) error {
	for _, p := range []struct {
		name string
		t    time.Time
	}{{"from", from}, {"to", to}} {
		if p.t.Before(minTime) || !p.t.Before(endTime) {
			return api.Errorf(api.InvalidParameter, "%s: %s lies outside the years 1 to 9999", p.name, p.t.Format(time.RFC3339Nano))
		}
	}
	if !to.After(from) {
		return api.Errorf(api.InvalidParameter, "to must be after from")
	}
	return nil
}
