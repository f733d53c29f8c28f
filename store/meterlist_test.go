package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"smartmeters/store"
)

func summaryUsernames(ms []store.MeterSummary) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Username
	}
	return out
}

// lastReadingString renders what a summary says of its latest reading.
func lastReadingString(ms store.MeterSummary) string {
	r := ms.LastReading
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("{meter %d at %d in %d out %d received %s}", r.MeterID, r.Timestamp, r.WhIn, r.WhOut,
		r.ReceivedAt.Format(time.RFC3339Nano))
}

func wantLastReading(r *store.Reading) string {
	if r == nil {
		return "none"
	}
	return lastReadingString(store.MeterSummary{LastReading: r})
}

// checkSummary fails unless ms is meter m with last as its latest reading.
func checkSummary(t *testing.T, ms store.MeterSummary, m store.Meter, last *store.Reading) {
	t.Helper()
	if ms.ID != m.ID || ms.Username != m.Username || !bytes.Equal(ms.PublicKey, m.PublicKey) ||
		ms.Fingerprint != m.Fingerprint || ms.Algorithm != m.Algorithm || !ms.RegisteredAt.Equal(m.RegisteredAt) ||
		ms.RegisteredAt.Location() != time.UTC {
		t.Errorf("summary of %s = {id %d %s %s %s %s}, want {id %d %s %s %s %s}", m.Username,
			ms.ID, ms.Username, fpOrNil(&ms.Fingerprint), ms.Algorithm, ms.RegisteredAt,
			m.ID, m.Username, fpOrNil(&m.Fingerprint), m.Algorithm, m.RegisteredAt)
	}
	if got, want := lastReadingString(ms), wantLastReading(last); got != want {
		t.Errorf("latest reading of %s = %s, want %s", m.Username, got, want)
	}
}

func testListMeters(t *testing.T, st *store.Store) {
	ctx := context.Background()
	// Created in this order, so in id order. Their prefix "list/" is this
	// subtest's own; "xlist/alpha" has it inside, not at the start.
	names := []string{
		"list/alpha", "list/Alpha", "list/a%c", "list/a_c", "list/abc", "list/é1", "list/alphabet", "xlist/alpha",
	}
	meters := make(map[string]store.Meter, len(names))
	var ids []int64
	for _, n := range names {
		m := newMeter(t, st, n)
		meters[n] = m
		ids = append(ids, m.ID)
	}
	// list/alpha: the latest reading by timestamp was stored first.
	alpha, abc := meters["list/alpha"], meters["list/abc"]
	const ts = 1764141000000
	latest := reading(alpha.ID, ts+2000, 20, 2)
	abcLatest := reading(abc.ID, ts, 7, 0)
	for _, batch := range [][]store.Reading{{latest}, {reading(alpha.ID, ts+1000, 10, 1)}, {abcLatest}} {
		if _, err := st.InsertReadings(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	lastOf := map[string]*store.Reading{"list/alpha": &latest, "list/abc": &abcLatest}
	listed := names[:len(names)-1] // all but xlist/alpha

	tests := []struct {
		name   string
		prefix string
		want   []string
	}{
		{"All", "list/", listed},
		{"CaseSensitive", "list/A", []string{"list/Alpha"}},
		{"Lower", "list/a", []string{"list/alpha", "list/a%c", "list/a_c", "list/abc", "list/alphabet"}},
		{"UpperNoMatch", "LIST/", nil},
		{"PercentLiteral", "list/a%", []string{"list/a%c"}},
		{"UnderscoreLiteral", "list/a_", []string{"list/a_c"}},
		{"PercentAlone", "list/%", nil},
		{"UnderscoreAlone", "list/_", nil},
		{"Multibyte", "list/é", []string{"list/é1"}},
		{"NoAccentFolding", "list/e", nil},
		{"WholeName", "list/alpha", []string{"list/alpha", "list/alphabet"}},
		{"LongerThanName", "list/alphabets", nil},
		{"InsideNotPrefix", "alpha", nil},
		{"Other", "xlist/", []string{"xlist/alpha"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.ListMeters(ctx, store.MeterFilter{UsernamePrefix: tt.prefix, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if g := summaryUsernames(got); !slices.Equal(g, tt.want) {
				t.Fatalf("ListMeters(prefix %q) = %q, want %q", tt.prefix, g, tt.want)
			}
			for _, ms := range got {
				checkSummary(t, ms, meters[ms.Username], lastOf[ms.Username])
			}
		})
	}
	t.Run("EmptyPrefix", func(t *testing.T) {
		// Everything, xlist/alpha too; the cursor and limit cut out this
		// subtest's meters.
		got, err := st.ListMeters(ctx, store.MeterFilter{AfterID: ids[0] - 1, Limit: len(ids)})
		if err != nil {
			t.Fatal(err)
		}
		if g := summaryUsernames(got); !slices.Equal(g, names) {
			t.Fatalf("ListMeters(no prefix) = %q, want %q", g, names)
		}
	})
	t.Run("AfterID", func(t *testing.T) {
		got, err := st.ListMeters(ctx, store.MeterFilter{UsernamePrefix: "list/", AfterID: ids[2], Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if g := summaryUsernames(got); !slices.Equal(g, listed[3:]) {
			t.Fatalf("ListMeters(after %s) = %q, want %q", names[2], g, listed[3:])
		}
		got, err = st.ListMeters(ctx, store.MeterFilter{UsernamePrefix: "list/", AfterID: ids[len(ids)-1], Limit: 1000})
		if err != nil || len(got) != 0 {
			t.Fatalf("ListMeters(after the last) = %q, %v; want none", summaryUsernames(got), err)
		}
	})
	t.Run("Limit", func(t *testing.T) {
		got, err := st.ListMeters(ctx, store.MeterFilter{UsernamePrefix: "list/", Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if g := summaryUsernames(got); !slices.Equal(g, listed[:3]) {
			t.Fatalf("ListMeters(limit 3) = %q, want %q", g, listed[:3])
		}
	})
	t.Run("Paging", func(t *testing.T) {
		var all []string
		after := int64(0)
		for pages := 0; ; pages++ {
			if pages > len(listed) {
				t.Fatalf("paging did not end; listed %q", all)
			}
			page, err := st.ListMeters(ctx, store.MeterFilter{UsernamePrefix: "list/", AfterID: after, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 {
				t.Fatalf("page of %d, limit 2", len(page))
			}
			if len(page) == 0 {
				break
			}
			all = append(all, summaryUsernames(page)...)
			after = page[len(page)-1].ID
		}
		if !slices.Equal(all, listed) {
			t.Fatalf("pages of 2 list %q, want %q", all, listed)
		}
	})
	t.Run("RevokedAt", func(t *testing.T) {
		m := newMeter(t, st, "list-revoked/a")
		revokedAt := registeredAt.Add(time.Hour)
		if _, err := st.RevokeKey(ctx, m.ID, "", revokedAt); err != nil {
			t.Fatal(err)
		}
		got, err := st.ListMeters(ctx, store.MeterFilter{UsernamePrefix: "list-revoked/", Limit: 10})
		if err != nil || len(got) != 1 {
			t.Fatalf("ListMeters = %q, %v; want the revoked meter", summaryUsernames(got), err)
		}
		if got[0].RevokedAt == nil || !got[0].RevokedAt.Equal(revokedAt) {
			t.Fatalf("ListMeters: RevokedAt = %s, want %s", timeOrNil(got[0].RevokedAt), revokedAt)
		}
	})
}

func testMeterSummaryByID(t *testing.T, st *store.Store) {
	ctx := context.Background()
	const ts = 1764141000000
	t.Run("OK", func(t *testing.T) {
		m := newMeter(t, st, "summary-ok")
		// Stored out of time order; the latest by timestamp wins.
		latest := reading(m.ID, ts+5000, 50, 5)
		for _, r := range []store.Reading{latest, reading(m.ID, ts, 10, 1), reading(m.ID, ts+1000, 20, 2)} {
			if _, err := st.InsertReadings(ctx, []store.Reading{r}); err != nil {
				t.Fatal(err)
			}
		}
		// Another meter's later reading is not this one's.
		other := newMeter(t, st, "summary-ok-other")
		if _, err := st.InsertReadings(ctx, []store.Reading{reading(other.ID, ts+9000, 90, 9)}); err != nil {
			t.Fatal(err)
		}
		ms, err := st.MeterSummaryByID(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkSummary(t, ms, m, &latest)
	})
	t.Run("NoReadings", func(t *testing.T) {
		m := newMeter(t, st, "summary-silent")
		ms, err := st.MeterSummaryByID(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkSummary(t, ms, m, nil)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, id := range []int64{-1, 0, math.MaxInt64} {
			if ms, err := st.MeterSummaryByID(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("MeterSummaryByID(%d) = meter %d, %v; want ErrNotFound", id, ms.ID, err)
			}
		}
	})
	t.Run("RevokedAt", func(t *testing.T) {
		m := newMeter(t, st, "summary-revoked")
		revokedAt := registeredAt.Add(time.Hour)
		if _, err := st.RevokeKey(ctx, m.ID, "", revokedAt); err != nil {
			t.Fatal(err)
		}
		ms, err := st.MeterSummaryByID(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ms.RevokedAt == nil || !ms.RevokedAt.Equal(revokedAt) {
			t.Fatalf("MeterSummaryByID: RevokedAt = %s, want %s", timeOrNil(ms.RevokedAt), revokedAt)
		}
	})
}

func testCountMeters(t *testing.T, st *store.Store) {
	ctx := context.Background()
	count := func() int64 {
		t.Helper()
		n, err := st.CountMeters(ctx)
		if err != nil {
			t.Fatalf("CountMeters: %v", err)
		}
		return n
	}
	n0 := count()
	a := newMeter(t, st, "count-a")
	newMeter(t, st, "count-b")
	if n := count(); n != n0+2 {
		t.Fatalf("CountMeters after 2 registrations = %d, want %d", n, n0+2)
	}
	// A refused registration, a revocation and a replacement count nothing.
	dup := newMeterValue(t, "count-a")
	if err := st.CreateMeter(ctx, &dup); !errors.Is(err, store.ErrUsernameTaken) {
		t.Fatalf("CreateMeter(taken username) = %v", err)
	}
	if _, err := st.ReplaceKey(ctx, a.ID, newKey(t), "", registeredAt.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeKey(ctx, a.ID, "", registeredAt.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != n0+2 {
		t.Fatalf("CountMeters = %d, want still %d", n, n0+2)
	}
}

func testCountReportingMeters(t *testing.T, st *store.Store) {
	ctx := context.Background()
	// An era of its own: no other subtest stores readings after it.
	t0 := time.Date(2034, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	tests := []struct {
		name  string
		since int64
		want  int64 // meters of this subtest counted
	}{
		{"BeforeAll", t0 - 5000, 3},
		{"AtFirst", t0 - 1000, 3},
		{"JustAfterFirst", t0 - 999, 2},
		{"AtReading", t0, 2},
		{"JustAfter", t0 + 1, 1},
		{"AtLast", t0 + 2000, 1},
		{"AfterAll", t0 + 2001, 0},
	}
	count := func(since int64) int64 {
		t.Helper()
		n, err := st.CountReportingMeters(ctx, time.UnixMilli(since))
		if err != nil {
			t.Fatalf("CountReportingMeters: %v", err)
		}
		return n
	}
	// Other subtests' meters are counted too; the baseline takes them out.
	base := make([]int64, len(tests))
	for i, tt := range tests {
		base[i] = count(tt.since)
	}
	a := newMeter(t, st, "reporting-a") // one reading at t0-1s
	b := newMeter(t, st, "reporting-b") // one reading at t0
	c := newMeter(t, st, "reporting-c") // two readings, at t0+1s and t0+2s
	newMeter(t, st, "reporting-d")      // none
	batch := []store.Reading{
		reading(a.ID, t0-1000, 1, 0),
		reading(b.ID, t0, 1, 0),
		reading(c.ID, t0+1000, 1, 0),
		reading(c.ID, t0+2000, 2, 0),
	}
	if _, err := st.InsertReadings(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := count(tt.since) - base[i]; n != tt.want {
				t.Fatalf("CountReportingMeters(%d) counts %d of this test's meters, want %d", tt.since, n, tt.want)
			}
		})
	}
	t.Run("OtherZone", func(t *testing.T) {
		n, err := st.CountReportingMeters(ctx, time.UnixMilli(t0).In(time.FixedZone("JST", 9*3600)))
		if err != nil {
			t.Fatal(err)
		}
		if n-base[3] != 2 {
			t.Fatalf("CountReportingMeters(t0 in JST) counts %d, want 2", n-base[3])
		}
	})
}

// testMeterActivity checks ListMeters' Activity filter and
// CountMeterStates on one set of meters: reporting, silent with an older
// reading, silent with none, and revoked after reporting.
func testMeterActivity(t *testing.T, st *store.Store) {
	ctx := context.Background()
	// Before the era of testCountReportingMeters, so as not to disturb it.
	t0 := time.Date(2033, 1, 1, 0, 0, 0, 0, time.UTC)
	counts := func() store.MeterCounts {
		t.Helper()
		c, err := st.CountMeterStates(ctx, t0)
		if err != nil {
			t.Fatalf("CountMeterStates: %v", err)
		}
		if c.Registered != c.Reporting+c.Silent+c.Revoked {
			t.Fatalf("CountMeterStates = %+v: the states do not add up", c)
		}
		return c
	}
	before := counts()
	a := newMeter(t, st, "activity-a")
	b := newMeter(t, st, "activity-b")
	newMeter(t, st, "activity-c")
	d := newMeter(t, st, "activity-d")
	storeReadings(t, st,
		reading(a.ID, t0.UnixMilli(), 1, 0),
		reading(b.ID, t0.UnixMilli()-1, 1, 0),
		reading(d.ID, t0.UnixMilli()+1, 1, 0))
	if _, err := st.RevokeKey(ctx, d.ID, "", registeredAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	after := counts()
	got := store.MeterCounts{Registered: after.Registered - before.Registered, Reporting: after.Reporting - before.Reporting,
		Silent: after.Silent - before.Silent, Revoked: after.Revoked - before.Revoked}
	if want := (store.MeterCounts{Registered: 4, Reporting: 1, Silent: 2, Revoked: 1}); got != want {
		t.Errorf("CountMeterStates counts %+v of this test's meters, want %+v", got, want)
	}

	for _, tt := range []struct {
		name     string
		activity store.Activity
		want     []string
	}{
		{"Any", store.AnyActivity, []string{"activity-a", "activity-b", "activity-c", "activity-d"}},
		{"ReportedSince", store.ReportedSince, []string{"activity-a"}},
		{"SilentSince", store.SilentSince, []string{"activity-b", "activity-c"}},
		{"Revoked", store.Revoked, []string{"activity-d"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := st.ListMeters(ctx, store.MeterFilter{UsernamePrefix: "activity-", Activity: tt.activity, Since: t0, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if got := summaryUsernames(ms); !slices.Equal(got, tt.want) {
				t.Errorf("ListMeters(%s) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}
