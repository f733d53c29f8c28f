package api

import "math"

// ParseReport parses the body of POST /reportReading without reflection,
// when it has the plain shape a client builds (AppendReport's, keys in any
// order, with or without white space): the three keys at most once each,
// strings without escapes, and integers without sign, fraction or
// exponent. It reports false for anything else, and the caller then
// decodes with encoding/json, which gives the precise error; whenever it
// reports true, the result is what that decoding would give.
func ParseReport(b []byte) (ReportRequest, bool) {
	p := parser{b: b}
	p.space()
	r, ok := p.report()
	p.space()
	return r, ok && p.i == len(p.b)
}

// ParseReports is ParseReport for the body of POST /reportReadings: a
// non-empty JSON array of such objects.
func ParseReports(b []byte) ([]ReportRequest, bool) {
	p := parser{b: b}
	p.space()
	if !p.byte('[') {
		return nil, false
	}
	var out []ReportRequest
	for {
		p.space()
		r, ok := p.report()
		if !ok {
			return nil, false
		}
		out = append(out, r)
		p.space()
		if p.byte(',') {
			continue
		}
		if !p.byte(']') {
			return nil, false
		}
		p.space()
		return out, p.i == len(p.b)
	}
}

// parser reads the plain JSON of reports from b at i.
type parser struct {
	b []byte
	i int
}

// reading holds a ReadingJSON and the integers it points to: one
// allocation for all four.
type reading struct {
	r ReadingJSON
	v [3]int64
}

func (p *parser) report() (ReportRequest, bool) {
	var r ReportRequest
	var seenKey, seenSig bool
	ok := p.object(func(key []byte) bool {
		switch string(key) {
		case "base64PublicKey":
			if seenKey {
				return false
			}
			seenKey = true
			s, ok := p.string()
			r.Base64PublicKey = string(s)
			return ok
		case "base64Signature":
			if seenSig {
				return false
			}
			seenSig = true
			s, ok := p.string()
			r.Base64Signature = string(s)
			return ok
		case "reading":
			if r.Reading != nil {
				return false
			}
			rd := new(reading)
			r.Reading = &rd.r
			return p.reading(rd)
		}
		return false
	})
	return r, ok
}

func (p *parser) reading(rd *reading) bool {
	return p.object(func(key []byte) bool {
		var slot **int64
		var v *int64
		switch string(key) {
		case "whIn":
			slot, v = &rd.r.WhIn, &rd.v[0]
		case "whOut":
			slot, v = &rd.r.WhOut, &rd.v[1]
		case "timestamp":
			slot, v = &rd.r.Timestamp, &rd.v[2]
		default:
			return false
		}
		if *slot != nil {
			return false
		}
		n, ok := p.integer()
		*v, *slot = n, v
		return ok
	})
}

// object reads {"key": value, …}, calling member with p after the colon
// of each member; member reads the value.
func (p *parser) object(member func(key []byte) bool) bool {
	if !p.byte('{') {
		return false
	}
	p.space()
	if p.byte('}') {
		return true
	}
	for {
		key, ok := p.string()
		if !ok {
			return false
		}
		p.space()
		if !p.byte(':') {
			return false
		}
		p.space()
		if !member(key) {
			return false
		}
		p.space()
		if p.byte(',') {
			p.space()
			continue
		}
		return p.byte('}')
	}
}

// string reads a string of printable ASCII without escapes, and returns
// its contents.
func (p *parser) string() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// integer reads 0 or a positive integer without leading zeros that fits
// an int64.
func (p *parser) integer() (int64, bool) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	if len(digits) == 0 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	var n int64
	for _, d := range digits {
		if n > (math.MaxInt64-int64(d-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

func (p *parser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// space skips JSON white space.
func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}
