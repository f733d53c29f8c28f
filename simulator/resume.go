package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"smartmeters/crypto"
)

// meterPage is the part of a GET /meters page that resuming needs.
type meterPage struct {
	Meters []struct {
		Username    string `json:"username"`
		LastReading *struct {
			Timestamp time.Time `json:"timestamp"`
			WhIn      int64     `json:"whIn"`
			WhOut     int64     `json:"whOut"`
		} `json:"lastReading"`
	} `json:"meters"`
	Next *int64 `json:"next"`
}

// lastReadings returns the latest stored reading of each meter of ids
// that has one, by username, read page by page from the admin listener's
// GET /meters, so that a fleet loaded from a keys file continues where an
// earlier run against the same server stopped.
func (s *Simulator) lastReadings(ctx context.Context, ids []MeterKey) (map[string]crypto.Reading, error) {
	ours := make(map[string]bool, len(ids))
	for _, id := range ids {
		ours[id.Username] = true
	}
	last := map[string]crypto.Reading{}
	base := strings.TrimRight(s.cfg.AdminURL, "/") + "/meters?limit=1000"
	after := int64(0)
	for {
		page, err := s.meterPage(ctx, base+"&after="+strconv.FormatInt(after, 10))
		if err != nil {
			return nil, fmt.Errorf("read the meters' last readings: %w", err)
		}
		for _, m := range page.Meters {
			if r := m.LastReading; r != nil && ours[m.Username] {
				last[m.Username] = crypto.Reading{WhIn: r.WhIn, WhOut: r.WhOut, Timestamp: r.Timestamp.UnixMilli()}
			}
		}
		if page.Next == nil || len(last) == len(ids) {
			return last, nil
		}
		after = *page.Next
	}
}

// meterPage gets one page of GET /meters.
func (s *Simulator) meterPage(ctx context.Context, u string) (meterPage, error) {
	var page meterPage
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return page, err
	}
	res, err := s.client.http.Do(req)
	if err != nil {
		return page, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return page, err
	}
	if res.StatusCode != http.StatusOK {
		return page, fmt.Errorf("GET %s: %s", u, res.Status)
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return page, fmt.Errorf("GET %s: %w", u, err)
	}
	return page, nil
}

// resumeFrom continues m's registers and timestamps from r, its latest
// stored reading, so that its next readings follow it.
func (m *meter) resumeFrom(r crypto.Reading) {
	m.whIn, m.whOut = float64(r.WhIn), float64(r.WhOut)
	m.lastTS = max(m.lastTS, r.Timestamp)
	m.accepted = r
}
