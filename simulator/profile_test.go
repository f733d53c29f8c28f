package simulator

import (
	"testing"
	"time"

	"smartmeters/crypto"
)

// TestProfileDay integrates a day of many households reading every five
// minutes and checks that the registers never decrease, that solar
// households export only by day, and that daily consumption is plausible.
func TestProfileDay(t *testing.T) {
	t.Parallel()
	key, err := crypto.GenerateKey(crypto.Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	loc := time.UTC
	midnight := time.Date(2026, 6, 1, 0, 0, 0, 0, loc).UnixMilli()
	step := (5 * time.Minute).Milliseconds()
	var withSolar int
	for i := range 200 {
		m := newMeter(MeterKey{Username: "m", Key: key}, i, 7, midnight)
		in0, out0 := m.whIn, m.whOut
		for ts := midnight + step; ts <= midnight+24*time.Hour.Milliseconds(); ts += step {
			prev := m.reading(m.lastTS)
			r := m.next(ts, loc)
			if r.WhIn < prev.WhIn || r.WhOut < prev.WhOut || r.Timestamp != ts {
				t.Fatalf("meter %d at %d: %+v after %+v", i, ts, r, prev)
			}
			if h := localHour(ts-step, loc); (h < sunrise || h > sunset) && r.WhOut != prev.WhOut {
				t.Fatalf("meter %d exports at %.2fh", i, h)
			}
		}
		if m.profile.solarPeakW > 0 {
			withSolar++
			continue
		}
		// Without solar, the import is the whole consumption: a household
		// uses about 3 to 25 kWh a day.
		if kwh := (m.whIn - in0) / 1000; kwh < 3 || kwh > 25 || m.whOut != out0 {
			t.Errorf("meter %d without solar: %.1f kWh in a day, export %g", i, kwh, m.whOut-out0)
		}
	}
	if withSolar < 100 || withSolar > 170 {
		t.Errorf("%d of 200 households have solar, want about two in three", withSolar)
	}
}

// TestNextTimestampsIncrease checks that two readings asked for within one
// millisecond still get distinct timestamps.
func TestNextTimestampsIncrease(t *testing.T) {
	t.Parallel()
	key, err := crypto.GenerateKey(crypto.Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := newMeter(MeterKey{Username: "m", Key: key}, 0, 1, 1000)
	a := m.next(5000, time.UTC)
	f := m.nextForged(5000)
	b := m.next(5000, time.UTC)
	if a.Timestamp != 5000 || f.Timestamp != 5001 || b.Timestamp != 5002 {
		t.Errorf("timestamps %d, %d, %d; want 5000, 5001, 5002", a.Timestamp, f.Timestamp, b.Timestamp)
	}
	if f.WhIn != a.WhIn || f.WhOut != a.WhOut {
		t.Errorf("forged reading %+v moved the registers from %+v", f, a)
	}
}
