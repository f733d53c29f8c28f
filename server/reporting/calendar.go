package reporting

import (
	"math"
	"sort"
	"time"

	"smartmeters/server/api"
)

// calendarEdges returns the edges of the days (width 24h) or months
// (width 0) of b.loc that cover [from, to): from the first instant of the
// day or month that holds from to the first edge at or after to. Each edge
// is the first instant of its day or month (see dayStart), in b.loc, so
// that answers write it in the zone asked for, and they strictly
// increase: a day that the zone skipped altogether, as Samoa skipped 30
// December 2011, is no bucket at all, and the day before it has its 24
// hours.
func (b bucketing) calendarEdges(from, to time.Time) ([]time.Time, error) {
	y, m, d := from.In(b.loc).Date()
	// start returns the first instant of the nth day or month from from's.
	// Each is counted from from's date, so that a month's end is not
	// dragged by a shorter month before it, nor a day's midnight by a
	// clock change before it.
	start := func(n int) time.Time {
		if b.width == 0 {
			return dayStart(y, m+time.Month(n), 1, b.loc)
		}
		return dayStart(y, m, d+n, b.loc)
	}
	// The first bucket holds from: its first instant is at or before
	// every instant of from's date.
	n := 0
	edges := []time.Time{start(n)}
	for last := edges[0]; last.Before(to); {
		n++
		e := start(n)
		if !e.After(last) {
			continue // skipped: it starts where the next one does
		}
		if len(edges) > maxBuckets {
			return nil, api.Errorf(api.InvalidParameter, "more than %d buckets asked for", maxBuckets)
		}
		edges = append(edges, e)
		last = e
	}
	return edges, nil
}

// dayStart returns the first instant of the day y-m-d of loc (normalised as
// time.Date normalises it): the first instant whose date in loc is that
// day or a later one. That is its midnight, the earlier of two when the
// clocks went back across midnight, or, when they skipped midnight, the
// instant they skipped to: the day that Sao Paulo's clocks went from
// 23:59:59 to 01:00 starts at 01:00, and a day the clocks skipped
// altogether starts where the day after it does.
func dayStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	midnight := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()
	// wall is the wall clock of loc at Unix second s, counted as if it
	// were UTC.
	wall := func(s int64) int64 {
		_, off := time.Unix(s, 0).In(loc).Zone()
		return s + int64(off)
	}
	// Midnight happens at midnight-off for each offset off in effect
	// around it, twice when the clocks went back across it.
	first := int64(math.MaxInt64)
	for _, near := range []int64{t.Unix() - 86400, t.Unix(), t.Unix() + 86400} {
		_, off := time.Unix(near, 0).In(loc).Zone()
		if s := midnight - int64(off); s < first && wall(s) == midnight {
			first = s
		}
	}
	if first != math.MaxInt64 {
		return time.Unix(first, 0).In(loc)
	}
	// Midnight never happened: time.Date placed it on one side of the gap
	// with the other side's offset, so that its wall clock is before
	// midnight (Sao Paulo: 23:00 the day before; Apia: a whole day before)
	// or after it, by the clock change. The gap ends at the first second
	// whose wall clock is at or past midnight (zones change their offsets
	// on whole seconds), between t and the clock change.
	lo, hi := t.Unix(), t.Unix()
	if w := wall(t.Unix()); w < midnight {
		hi += midnight - w
	} else {
		lo -= w - midnight
	}
	s := lo + int64(sort.Search(int(hi-lo), func(i int) bool { return wall(lo+int64(i)) >= midnight }))
	return time.Unix(s, 0).In(loc)
}
