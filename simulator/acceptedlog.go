package simulator

import (
	"strconv"

	"smartmeters/crypto"
)

// logAccepted writes one line to Config.AcceptedLog, if set, for a genuine
// reading the server accepted (201, or 200 to a retry):
//
//	username,timestamp,whIn,whOut
//
// Lines are written whole, in the order the answers arrived. A write error
// is ignored: the log is a test aid, not part of the run's verdict.
func (s *Simulator) logAccepted(username string, r crypto.Reading) {
	if s.cfg.AcceptedLog == nil {
		return
	}
	b := make([]byte, 0, len(username)+64)
	b = append(b, username...)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Timestamp, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.WhIn, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.WhOut, 10)
	b = append(b, '\n')
	s.acceptedMu.Lock()
	defer s.acceptedMu.Unlock()
	_, _ = s.cfg.AcceptedLog.Write(b)
}
