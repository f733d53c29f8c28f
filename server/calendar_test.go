package server_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"smartmeters/db/dbtest"
)

// calendarRow is a bucket as an answer writes it: its edges as text, in
// the zone asked for, and its energy (-1 for a meter's incomplete bucket).
type calendarRow struct {
	start, end  string
	whIn, whOut int64
}

func (r calendarRow) String() string {
	return fmt.Sprintf("[%s, %s) %d/%d", r.start, r.end, r.whIn, r.whOut)
}

// calendarAnswer is what one endpoint answered: for a 200, the window it
// states (the first and last edge for CSV) and its buckets as written.
type calendarAnswer struct {
	response
	from, to string
	rows     []calendarRow
}

// calendarEndpoints are the answers that cut time into the days and
// months of a zone, by the path they are asked at for meter id.
func calendarEndpoints(id int64) map[string]string {
	return map[string]string{
		"fleet":       "/fleet?",
		"csv":         "/fleet/consumption.csv?",
		"consumption": fmt.Sprintf("/meters/%d/consumption?", id),
	}
}

// getCalendar asks endpoint (a key of calendarEndpoints) at path for its
// buckets, and fails the test on an answer it cannot read.
func getCalendar(t *testing.T, ts testServer, endpoint, path string) calendarAnswer {
	t.Helper()
	a := calendarAnswer{response: get(t, ts.admin+path)}
	if a.status != http.StatusOK {
		return a
	}
	type jsonBucket struct {
		Start, End  string
		WhIn, WhOut *int64
	}
	var buckets []jsonBucket
	switch endpoint {
	case "fleet":
		var body struct {
			Energy struct {
				From, To string
				Buckets  []jsonBucket
			}
		}
		if err := json.Unmarshal([]byte(a.rawBody), &body); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, a.rawBody)
		}
		a.from, a.to, buckets = body.Energy.From, body.Energy.To, body.Energy.Buckets
	case "consumption":
		var body struct {
			From, To string
			Buckets  []jsonBucket
		}
		if err := json.Unmarshal([]byte(a.rawBody), &body); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, a.rawBody)
		}
		a.from, a.to, buckets = body.From, body.To, body.Buckets
	case "csv":
		recs, err := csv.NewReader(strings.NewReader(a.rawBody)).ReadAll()
		if err != nil || len(recs) == 0 || strings.Join(recs[0], ",") != "start,end,wh_in,wh_out,partial" {
			t.Fatalf("GET %s: %v: %q", path, err, a.rawBody)
		}
		for _, rec := range recs[1:] {
			in, err1 := strconv.ParseInt(rec[2], 10, 64)
			out, err2 := strconv.ParseInt(rec[3], 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("GET %s: row %q", path, rec)
			}
			buckets = append(buckets, jsonBucket{Start: rec[0], End: rec[1], WhIn: &in, WhOut: &out})
		}
		if len(buckets) > 0 {
			a.from, a.to = buckets[0].Start, buckets[len(buckets)-1].End
		}
	default:
		t.Fatalf("no endpoint %q", endpoint)
	}
	for _, b := range buckets {
		r := calendarRow{start: b.Start, end: b.End, whIn: -1, whOut: -1}
		if b.WhIn != nil && b.WhOut != nil {
			r.whIn, r.whOut = *b.WhIn, *b.WhOut
		}
		a.rows = append(a.rows, r)
	}
	return a
}

// checkCalendar fails the test unless a's buckets are the days (unit
// "1d") or months ("1mo") of loc that cover [from, to), each once and in
// order: contiguous, their edges strictly increasing, each edge the first
// instant of its day or month in loc (midnight, or where the clocks land
// when they skip midnight), written in loc within the years 1 to 9999.
func checkCalendar(t *testing.T, what string, a calendarAnswer, unit string, loc *time.Location, from, to time.Time) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: "+format+"\nbuckets %v", append(append([]any{what}, args...), a.rows)...)
	}
	// instant reads an edge as written. RFC 3339 cannot write the seconds
	// of an offset of local mean time (Kathmandu's +05:41:16 is written
	// +05:41), so there the wall clock written is read in loc.
	instant := func(s string) time.Time {
		t.Helper()
		e, err := time.Parse(time.RFC3339, s)
		if err != nil {
			fail("edge %q: %v", s, err)
		}
		if _, off := e.In(loc).Zone(); off%60 != 0 {
			e = time.Date(e.Year(), e.Month(), e.Day(), e.Hour(), e.Minute(), e.Second(), 0, loc)
		}
		if got := e.In(loc).Format(time.RFC3339); got != s {
			fail("edge %s is not written in %s (%s)", s, loc, got)
		}
		return e
	}
	// date is the date of instant e in loc.
	date := func(e time.Time) time.Time {
		y, m, d := e.In(loc).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	if len(a.rows) == 0 {
		fail("no buckets")
	}
	if a.from != a.rows[0].start || a.to != a.rows[len(a.rows)-1].end {
		fail("window [%s, %s) is not its buckets'", a.from, a.to)
	}
	var prev, prevDay time.Time
	for i, r := range a.rows {
		if i > 0 && r.start != a.rows[i-1].end {
			fail("bucket %d starts at %s, the one before ends at %s", i, r.start, a.rows[i-1].end)
		}
		for j, s := range []string{r.start, r.end} {
			if i > 0 && j == 0 {
				continue
			}
			e := instant(s)
			if y := e.In(loc).Year(); y < 1 || y > 9999 {
				fail("edge %s is outside the years 1 to 9999", s)
			}
			// The first day of the edge's day or month: the edge must be
			// the first instant on or after it.
			day := date(e)
			if unit == "1mo" {
				day = day.AddDate(0, 0, 1-day.Day())
			}
			if !date(e.Add(-time.Second)).Before(day) {
				fail("edge %s is not the first instant of a %s of %s", s, unit, loc)
			}
			if i+j > 0 && (!e.After(prev) || !day.After(prevDay)) {
				fail("edge %s does not come after the one before, nor start a later %s", s, unit)
			}
			prev, prevDay = e, day
		}
	}
	if instant(a.from).After(from) || instant(a.to).Before(to) {
		fail("buckets [%s, %s) do not cover [%s, %s)", a.from, a.to, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
}

// TestCalendarSkippedDay asks for the days and months of Pacific/Apia
// around 30 December 2011, a day Samoa skipped when it moved across the
// date line (from UTC−10 to UTC+14): on every endpoint and store the day
// is simply absent, the days around it have 24 hours, and December has
// 30 days.
func TestCalendarSkippedDay(t *testing.T) {
	apia, err := time.LoadLocation("Pacific/Apia")
	if err != nil {
		t.Fatal(err)
	}
	// 100 Wh in and 10 Wh out an hour, on the hour (UTC), from 30 November
	// 2011 to 2 February 2012.
	first := time.Date(2011, 11, 30, 0, 0, 0, 0, time.UTC)
	var regs []reg
	for i := range 64*24 + 1 {
		regs = append(regs, reg{first.Add(time.Duration(i) * time.Hour), int64(100 * i), int64(10 * i)})
	}
	day := func(y int, m time.Month, d int) calendarRow {
		start := time.Date(y, m, d, 0, 0, 0, 0, apia)
		return calendarRow{start.Format(time.RFC3339), start.AddDate(0, 0, 1).Format(time.RFC3339), 2400, 240}
	}
	days := []calendarRow{
		day(2011, 12, 27), day(2011, 12, 28),
		{"2011-12-29T00:00:00-10:00", "2011-12-31T00:00:00+14:00", 2400, 240}, // 24 hours: the 30th never was
		day(2011, 12, 31), day(2012, 1, 1), day(2012, 1, 2), day(2012, 1, 3),
	}
	tests := []struct {
		name, query string
		want        []calendarRow
	}{
		{"Days", "bucket=1d&from=2011-12-28T00:00:00Z&to=2012-01-03T00:00:00Z", days},
		{"DaysBeforeTheGap", "bucket=1d&from=2011-12-29T10:00:00Z&to=2011-12-30T10:00:00Z", days[2:3]},
		{"DaysAfterTheGap", "bucket=1d&from=2011-12-30T10:00:00Z&to=2011-12-30T10:00:01Z", days[3:4]},
		{"DaysWrittenInApia", "bucket=1d&from=" + url.QueryEscape("2011-12-29T23:00:00-10:00") + "&to=" + url.QueryEscape("2011-12-31T01:00:00+14:00"), days[2:4]},
		{"Months", "bucket=1mo&from=2011-12-15T00:00:00Z&to=2012-01-15T00:00:00Z", []calendarRow{
			{"2011-12-01T00:00:00-10:00", "2012-01-01T00:00:00+14:00", 30 * 2400, 30 * 240}, // 30 days
			{"2012-01-01T00:00:00+14:00", "2012-02-01T00:00:00+14:00", 31 * 2400, 31 * 240},
		}},
	}
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			k := newKey(t, "ed25519")
			half := len(regs) / 2
			id := seedMeter(t, ts, "apia", k, regs[:half]...)
			if _, err := ts.store.FollowRollups(context.Background()); err != nil {
				t.Fatal(err)
			}
			storeRegs(t, ts, id, k, regs[half:]...) // these stay queued
			check := func(when string) {
				for _, tt := range tests {
					t.Run(tt.name+"/"+when, func(t *testing.T) {
						for endpoint, path := range calendarEndpoints(id) {
							path += tt.query + "&tz=Pacific/Apia"
							a := getCalendar(t, ts, endpoint, path)
							if a.status != http.StatusOK {
								t.Fatalf("GET %s: %d %s", path, a.status, a.rawBody)
							}
							if !reflect.DeepEqual(a.rows, tt.want) {
								t.Errorf("GET %s:\n got %v\nwant %v", path, a.rows, tt.want)
							}
						}
					})
				}
			}
			check("HalfRolledUp")
			if _, err := ts.store.FollowRollups(context.Background()); err != nil {
				t.Fatal(err)
			}
			check("RolledUp")
		})
	}
}

// TestCalendarYearBounds asks for days and months at the ends of the
// years JSON and RFC 3339 can write, in the zones furthest from UTC: a
// window whose buckets would start before the year 1 or end after the
// year 9999 as the answer writes them, in the zone asked for, is 400
// invalid-parameter naming the parameter that reaches there, on every
// endpoint; one whose edges can all be written is answered.
func TestCalendarYearBounds(t *testing.T) {
	tests := []struct {
		name, query string
		param       string // the parameter a 400 names; "" for a 200
	}{
		{"ErrMonthEndsIn10000East", "tz=Etc/GMT-14&bucket=1mo&from=9999-11-01T00:00:00Z&to=9999-12-31T00:00:00Z", "to"},
		{"ErrDayEndsIn10000East", "tz=Etc/GMT-14&bucket=1d&from=9999-12-30T00:00:00Z&to=9999-12-31T10:00:00Z", "to"},
		{"ErrDayEndsIn10000West", "tz=Etc/GMT%2B12&bucket=1d&from=9999-12-30T00:00:00Z&to=9999-12-31T12:00:01Z", "to"},
		{"ErrMonthEndsIn10000Berlin", "tz=Europe/Berlin&bucket=1mo&from=9999-12-01T00:00:00Z&to=9999-12-31T00:00:00Z", "to"},
		{"ErrMonthEndsIn10000UTC", "bucket=1mo&from=9999-12-01T00:00:00Z&to=9999-12-31T00:00:00Z", "to"},
		{"ErrDayStartsIn0West", "tz=Etc/GMT%2B12&bucket=1d&from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z", "from"},
		{"ErrMonthStartsIn0West", "tz=Etc/GMT%2B12&bucket=1mo&from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z", "from"},
		{"ErrFromBeforeYear1", "tz=Etc/GMT-14&bucket=1d&from=-62135596800001&to=0001-01-02T00:00:00Z", "from"},
		{"ErrToAfterYear9999", "tz=Etc/GMT%2B12&bucket=1mo&from=9999-12-01T00:00:00Z&to=253402300800000", "to"},
		{"LastDayEast", "tz=Etc/GMT-14&bucket=1d&from=9999-12-29T10:00:00Z&to=9999-12-30T10:00:00Z", ""},
		{"LastDayWest", "tz=Etc/GMT%2B12&bucket=1d&from=9999-12-30T12:00:00Z&to=9999-12-31T12:00:00Z", ""},
		{"ErrDecember9999West", "tz=Etc/GMT%2B12&bucket=1mo&from=9999-12-01T12:00:00Z&to=9999-12-31T11:00:00Z", "to"},
		{"November9999West", "tz=Etc/GMT%2B12&bucket=1mo&from=9999-11-01T12:00:00Z&to=9999-12-01T12:00:00Z", ""},
		{"FirstDayWest", "tz=Etc/GMT%2B12&bucket=1d&from=0001-01-01T12:00:00Z&to=0001-01-02T12:00:00Z", ""},
		// The first day and month of the year 1 in UTC+14 start in the
		// year 0 of UTC, but are written in the year 1.
		{"FirstDayEast", "tz=Etc/GMT-14&bucket=1d&from=0001-01-01T00:00:00Z&to=0001-01-01T01:00:00Z", ""},
		{"FirstMonthEast", "tz=Etc/GMT-14&bucket=1mo&from=0001-01-01T00:00:00Z&to=0001-01-15T00:00:00Z", ""},
	}
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			id := seedMeter(t, ts, "bounds", newKey(t, "ed25519"))
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					q, err := url.ParseQuery(tt.query)
					if err != nil {
						t.Fatal(err)
					}
					loc := time.UTC
					if tz := q.Get("tz"); tz != "" {
						if loc, err = time.LoadLocation(tz); err != nil {
							t.Fatal(err)
						}
					}
					from, _ := time.Parse(time.RFC3339, q.Get("from"))
					to, _ := time.Parse(time.RFC3339, q.Get("to"))
					for endpoint, path := range calendarEndpoints(id) {
						path += tt.query
						a := getCalendar(t, ts, endpoint, path)
						if tt.param == "" {
							if a.status != http.StatusOK {
								t.Fatalf("GET %s: %d %s", path, a.status, a.rawBody)
							}
							checkCalendar(t, "GET "+path, a, q.Get("bucket"), loc, from, to)
							continue
						}
						wantProblem(t, a.response, http.StatusBadRequest, "invalid-parameter")
						if d, _ := a.body["detail"].(string); !strings.HasPrefix(d, tt.param+":") {
							t.Errorf("GET %s: detail %q does not name %s", path, d, tt.param)
						}
					}
				})
			}
		})
	}
}

// calendarZones are zones whose days and months are hard to cut: a day
// skipped (Apia, Kiritimati), offsets of half and quarter hours
// (St Johns, Kathmandu), a clock change of half an hour (Lord Howe),
// clocks that skipped midnight (Sao Paulo, Havana, Santiago), local mean
// time of seconds, and the zones furthest from UTC.
var calendarZones = []string{
	"Pacific/Apia", "Pacific/Kiritimati", "America/St_Johns", "Australia/Lord_Howe",
	"Asia/Kathmandu", "Europe/Berlin", "America/Sao_Paulo", "America/Havana",
	"America/Santiago", "Africa/Monrovia", "Etc/GMT-14", "Etc/GMT+12", "UTC",
}

// TestCalendarProperty asks every endpoint for the days and months of
// many zones over random windows, many of them around a change of the
// zone's clocks and some at the ends of the years 1 to 9999: every answer
// is 200 with the zone's days or months (see checkCalendar), or 400
// invalid-parameter for a window at the ends; never 500.
func TestCalendarProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	minYear := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxYear := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			k := newKey(t, "ed25519")
			// Readings around the changes the windows are drawn near.
			start := time.Date(2011, 12, 25, 0, 0, 0, 0, time.UTC)
			var regs []reg
			for i := range 14 * 24 {
				regs = append(regs, reg{start.Add(time.Duration(i) * time.Hour), int64(100 * i), int64(10 * i)})
			}
			id := seedMeter(t, ts, "zones", k, regs...)
			for _, tz := range calendarZones {
				loc, err := time.LoadLocation(tz)
				if err != nil {
					t.Fatal(err)
				}
				// The days on which the zone changed its offset, from 1850
				// to 2050.
				var changes []time.Time
				for at := time.Date(1850, 1, 1, 0, 0, 0, 0, time.UTC); at.Year() < 2050; at = at.Add(24 * time.Hour) {
					_, before := at.In(loc).Zone()
					if _, after := at.Add(24 * time.Hour).In(loc).Zone(); after != before {
						changes = append(changes, at)
					}
				}
				for range 6 {
					// Around a random day on which the zone changed its
					// offset (a random instant of 1850 to 2050 for a zone
					// that never did), or at either end of the years.
					var from time.Time
					atEnds := false
					switch rng.IntN(4) {
					case 0:
						from, atEnds = minYear.Add(time.Duration(rng.Int64N(int64(72*time.Hour)))-24*time.Hour), true
					case 1:
						from, atEnds = maxYear.Add(-time.Duration(rng.Int64N(int64(70*24*time.Hour)))), true
					default:
						from = time.Date(1850+rng.IntN(200), 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
						if len(changes) > 0 {
							from = changes[rng.IntN(len(changes))]
						}
						from = from.Add(time.Duration(rng.Int64N(int64(72*time.Hour))) - 36*time.Hour)
					}
					from = time.UnixMilli(from.UnixMilli()) // as the query writes it
					for _, unit := range []string{"1d", "1mo"} {
						span := time.Second + time.Duration(rng.Int64N(int64(10*24*time.Hour)))
						if unit == "1mo" {
							span *= 20
						}
						to := time.UnixMilli(from.Add(span).UnixMilli())
						query := fmt.Sprintf("tz=%s&bucket=%s&from=%d&to=%d", url.QueryEscape(tz), unit, from.UnixMilli(), to.UnixMilli())
						for endpoint, path := range calendarEndpoints(id) {
							path += query
							a := getCalendar(t, ts, endpoint, path)
							what := fmt.Sprintf("GET %s (%s to %s)", path, from.In(loc).Format(time.RFC3339), to.In(loc).Format(time.RFC3339))
							switch {
							case a.status == http.StatusOK:
								checkCalendar(t, what, a, unit, loc, from, to)
							case a.status == http.StatusBadRequest && atEnds:
								wantProblem(t, a.response, http.StatusBadRequest, "invalid-parameter")
							default:
								t.Fatalf("%s: %d %s", what, a.status, a.rawBody)
							}
						}
					}
				}
			}
		})
	}
}
