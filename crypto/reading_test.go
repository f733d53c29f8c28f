package crypto_test

import (
	"encoding/hex"
	"math"
	"strings"
	"testing"
	"time"

	"smartmeters/crypto"
)

func TestReadingMessage(t *testing.T) {
	tests := []struct {
		name string
		r    crypto.Reading
		want string // tag, whIn, whOut, timestamp
	}{
		{"Zero", crypto.Reading{},
			"534d5231 0000000000000000 0000000000000000 0000000000000000"},
		{"Vector", vectorReading,
			"534d5231 000000000012d687 00000000000022ce 0000019abf031af3"},
		{"Negative", crypto.Reading{WhIn: -1, WhOut: -2, Timestamp: -1000},
			"534d5231 ffffffffffffffff fffffffffffffffe fffffffffffffc18"},
		{"Extremes", crypto.Reading{WhIn: math.MaxInt64, WhOut: math.MinInt64, Timestamp: 1},
			"534d5231 7fffffffffffffff 8000000000000000 0000000000000001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.r.Message()
			if got, want := hex.EncodeToString(msg[:]), strings.ReplaceAll(tt.want, " ", ""); got != want {
				t.Errorf("Message() = %s, want %s", got, want)
			}
			if len(msg) != crypto.MessageSize || crypto.MessageSize != 28 {
				t.Errorf("len(Message()) = %d, MessageSize = %d, want 28", len(msg), crypto.MessageSize)
			}
		})
	}
}

func TestReadingTime(t *testing.T) {
	tests := []struct {
		name string
		ms   int64
		want time.Time
	}{
		{"Vector", vectorReading.Timestamp, time.Date(2025, 11, 26, 7, 14, 3, 123e6, time.UTC)},
		{"Epoch", 0, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"BeforeEpoch", -1, time.Date(1969, 12, 31, 23, 59, 59, 999e6, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := crypto.Reading{Timestamp: tt.ms}.Time()
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("Time() = %v, want %v", got, tt.want)
			}
		})
	}
}
