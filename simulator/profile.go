package simulator

import (
	"math"
	"math/rand/v2"
	"time"
)

// The solar day of the model, in local hours.
const (
	sunrise = 6.0
	sunset  = 20.0
)

// maxStep is the longest stretch integrated at one power level; a longer
// interval between readings is integrated in steps so that peaks and the
// solar curve still shape it.
const maxStep = 5 * time.Minute

// profile is one household: how much it consumes over a day and how much
// its rooftop solar produces.
type profile struct {
	baseW      float64 // always-on load, 150 to 400 W
	morningW   float64 // extra load at the morning peak, around 8h
	eveningW   float64 // extra load at the evening peak, around 20h
	solarPeakW float64 // solar output at noon under a clear sky; 0 without solar
	cloudiness float64 // how much clouds may dim the sun, 0 to 0.8
}

// newProfile draws a household from r.
func newProfile(r *rand.Rand) profile {
	p := profile{
		baseW:      150 + 250*r.Float64(),
		morningW:   300 + 900*r.Float64(),
		eveningW:   600 + 1400*r.Float64(),
		cloudiness: 0.8 * r.Float64(),
	}
	if r.Float64() >= 0.35 { // about two homes in three have solar
		p.solarPeakW = 500 + 5500*r.Float64()
	}
	return p
}

// loadW returns the household's consumption at local hour h, with z a
// standard normal noise draw.
func (p *profile) loadW(h, z float64) float64 {
	w := p.baseW + p.morningW*bump(h, 8, 0.8) + p.eveningW*bump(h, 20, 1.3)
	w += 0.15 * w * z
	return max(w, 0.5*p.baseW)
}

// solarW returns the solar output at local hour h, with u in [0, 1) the
// share of clouds passing at the time.
func (p *profile) solarW(h, u float64) float64 {
	if p.solarPeakW == 0 || h <= sunrise || h >= sunset {
		return 0
	}
	x := math.Sin(math.Pi * (h - sunrise) / (sunset - sunrise))
	return p.solarPeakW * x * x * (1 - p.cloudiness*u)
}

// bump is a bell curve of height 1 centred on hour c, of width w hours.
func bump(h, c, w float64) float64 {
	d := h - c
	return math.Exp(-d * d / (2 * w * w))
}

// integrate advances m's registers from m.regAt to the Unix millisecond
// to, under net metering: import is the load above solar output, export the
// solar output above load, in Wh. The registers never decrease.
func (m *meter) integrate(to int64, loc *time.Location) {
	step := maxStep.Milliseconds()
	for t := m.regAt; t < to; {
		dt := min(step, to-t)
		h := localHour(t+dt/2, loc)
		net := m.profile.loadW(h, m.normal()) - m.profile.solarW(h, m.uniform())
		hours := float64(dt) / float64(time.Hour.Milliseconds())
		if net > 0 {
			m.whIn += net * hours
		} else {
			m.whOut -= net * hours
		}
		t += dt
	}
	m.regAt = max(m.regAt, to)
}

// localHour returns the local time of day of Unix millisecond ms in hours.
func localHour(ms int64, loc *time.Location) float64 {
	h, mi, s := time.UnixMilli(ms).In(loc).Clock()
	return float64(h) + float64(mi)/60 + float64(s)/3600
}

// uniform returns a draw in [0, 1) from m's own generator.
func (m *meter) uniform() float64 {
	return float64(m.rng.Uint64()>>11) / (1 << 53)
}

// normal returns an approximately standard normal draw: the scaled sum of
// four uniforms, cheap and bounded.
func (m *meter) normal() float64 {
	return (m.uniform() + m.uniform() + m.uniform() + m.uniform() - 2) * math.Sqrt(3)
}
