package reporting

import (
	"testing"
	"time"
)

// TestDayStart checks dayStart on every day from 1850 to 2100, and at the
// ends of the years 1 to 9999, in zones that skipped a day (Apia,
// Kiritimati), skip midnight (Sao Paulo, Havana, Santiago, Cairo, Beirut),
// go back across it (Havana) or repeated a whole day (Sitka in 1867): its
// answer is the first instant whose date in the zone is the day asked for
// or a later one (so a skipped day starts where the next one does), and it
// never decreases from one day to the next.
func TestDayStart(t *testing.T) {
	zones := []string{
		"UTC", "Pacific/Apia", "Pacific/Kiritimati", "America/St_Johns", "Australia/Lord_Howe",
		"Asia/Kathmandu", "Europe/Berlin", "America/Sao_Paulo", "America/Havana", "America/Santiago",
		"Africa/Cairo", "Asia/Beirut", "America/Sitka", "Africa/Monrovia", "Etc/GMT-14", "Etc/GMT+12",
	}
	// date is the date of instant s in loc, as midnight UTC.
	date := func(s time.Time, loc *time.Location) time.Time {
		y, m, d := s.In(loc).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	spans := [][2]time.Time{
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1, 2, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(1850, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2101, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(9999, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 2, 0, 0, 0, 0, time.UTC)},
	}
	for _, tz := range zones {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		for _, span := range spans {
			prev, first := time.Time{}, true
			for day := span[0]; day.Before(span[1]); day = day.AddDate(0, 0, 1) {
				s := dayStart(day.Year(), day.Month(), day.Day(), loc)
				if s.Location() != loc {
					t.Fatalf("%s %s: %s is not in the zone", tz, day.Format(time.DateOnly), s)
				}
				if date(s, loc).Before(day) || !date(s.Add(-time.Second), loc).Before(day) {
					t.Fatalf("%s %s: %s is not the first instant of the day", tz, day.Format(time.DateOnly), s)
				}
				if !first && s.Before(prev) {
					t.Fatalf("%s %s: %s after %s the day before", tz, day.Format(time.DateOnly), s, prev)
				}
				// Where the clocks changed, no earlier minute of the day
				// before it already had the day's date (the clocks went
				// back across midnight).
				if _, off := s.Zone(); off != func() int { _, o := s.Add(-25 * time.Hour).Zone(); return o }() {
					for m := s.Add(-26 * time.Hour); m.Before(s); m = m.Add(time.Minute) {
						if !date(m, loc).Before(day) {
							t.Fatalf("%s %s: %s, but %s had the date already", tz, day.Format(time.DateOnly), s, m.In(loc))
						}
					}
				}
				prev, first = s, false
			}
		}
	}
}
