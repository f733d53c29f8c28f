package server

import (
	"context"
	"net/netip"
	"time"

	"smartmeters/crypto"
	"smartmeters/server/ingest"
	"smartmeters/server/mqtt"
	"smartmeters/store"
)

// Config is the configuration of a server and of the background work
// `smartmeters serve` runs beside it. A zero field means zero (no wait, no
// limit, none), never "the default": start from DefaultConfig, which holds
// every default in one place.
type Config struct {
	Listen      string         // public address
	AdminListen string         // admin address
	AdminAllow  []netip.Prefix // networks allowed on the admin listener

	MaxBodyBytes   int64 // largest body of a single report or an admin request
	MaxHeaderBytes int   // largest request header block (http.Server.MaxHeaderBytes)

	// MemoryBudget bounds the bytes that open connections (room for their
	// headers) and request bodies in flight may hold at once, and
	// MemoryPerAddress the part of it one client address (an IPv6 /64)
	// may hold; past either a connection or a body is answered 503
	// overloaded at once.
	MemoryBudget     int64
	MemoryPerAddress int64
	ShutdownTimeout  time.Duration // how long Serve waits for requests in flight once told to stop
	Now              func() time.Time

	// How long a client may take (http.Server's timeouts).
	ReadHeaderTimeout time.Duration // to send a request's headers
	ReadTimeout       time.Duration // to send a whole request
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer
	IdleTimeout       time.Duration // a keep-alive connection's wait for its next request

	// RatePerAddress limits the public requests a second of each client
	// address, with bursts of RateBurstPerAddress (0: ten seconds' worth);
	// 0 means no limit.
	RatePerAddress      float64
	RateBurstPerAddress int
	// MaxConcurrentRequests caps the public requests in progress; beyond it
	// a request is answered 503 at once. 0 means no cap.
	MaxConcurrentRequests int

	// RequestLogEvery samples the request log: every request answered 5xx
	// is logged, and one in RequestLogEvery of the others (1: every
	// request; 0: none of them). Every request is counted and timed in
	// smartmeters_http_request_seconds either way.
	RequestLogEvery int

	// TLSCert and TLSKey name PEM files; set, both listeners serve TLS.
	// AdminClientCA names a PEM file of CAs; set, the admin listener
	// demands a client certificate one of them signed.
	TLSCert, TLSKey, AdminClientCA string

	// SchemaCheck, when set, tells /readyz whether the store's schema is
	// what this binary needs (db.CheckSchema); its answer is cached for
	// SchemaCheckTTL.
	SchemaCheck    func(context.Context) error
	SchemaCheckTTL time.Duration

	// ExportKey signs every export (api's export format), and its public
	// half is published at GET /signing-key. serve keeps it in the store,
	// shared by every server on it, unless --export-key names a file; nil
	// makes New generate one for this server alone.
	ExportKey *crypto.PrivateKey

	// SilentAfter is how long a meter may go without a reading (by its
	// timestamp) before the reporting API, the dashboard and the
	// smartmeters_meters gauge call it silent; a request's window
	// overrides it.
	SilentAfter time.Duration

	// MQTT configures the MQTT intake, off while MQTT.Broker is empty.
	// Its limits (MaxBody, MaxBatchBody) are set by New from MaxBodyBytes
	// and Ingest.MaxBatch, as for HTTP, and its clock is Now.
	MQTT mqtt.Config

	// Ingest configures the hot path: verification, the key cache, the
	// group commit and the per-meter rate limit. Its clock is Now.
	Ingest ingest.Config

	// Background work, which `serve` starts beside the listeners:
	// partitions are created PartitionsAhead ahead of now and, when
	// Retention is set, readings older than Retention dropped, every
	// PartitionCheckEvery; with several servers on one database, each
	// re-reads the key changes of the last two KeyResync periods every
	// KeyResync, behind LISTEN/NOTIFY. The readings stored are rolled up
	// every RollupEvery; rollups older than RollupRetention are dropped,
	// or with their readings when it is 0.
	PartitionsAhead     time.Duration
	PartitionCheckEvery time.Duration
	Retention           time.Duration
	KeyResync           time.Duration
	RollupEvery         time.Duration
	RollupRetention     time.Duration
}

// DefaultAdminAllow is the admin allowlist by default: loopback and the
// private ranges.
var DefaultAdminAllow = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// DefaultConfig returns the configuration of a server with every default:
// the values `smartmeters serve` shows in its --help. Those of the ingest
// path are ingest.DefaultConfig's. The store decides one field: set
// Ingest.Committers to 1 for SQLite, which has one writer.
func DefaultConfig() Config {
	return Config{
		Listen:                ":8080",
		AdminListen:           "127.0.0.1:8081",
		AdminAllow:            DefaultAdminAllow,
		MaxBodyBytes:          64 << 10,
		MaxHeaderBytes:        16 << 10,
		MemoryBudget:          128 << 20,
		MemoryPerAddress:      32 << 20,
		ShutdownTimeout:       30 * time.Second,
		Now:                   time.Now,
		ReadHeaderTimeout:     5 * time.Second,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           2 * time.Minute,
		MaxConcurrentRequests: 1024,
		RequestLogEvery:       100,
		SchemaCheckTTL:        5 * time.Second,
		SilentAfter:           time.Minute,
		RollupEvery:           time.Second,
		Ingest:                ingest.DefaultConfig(),
		MQTT: mqtt.Config{
			Topic: mqtt.DefaultTopic, ResultsTopic: mqtt.DefaultResultsTopic, Shared: true, RetryMax: 10 * time.Second, InFlight: mqtt.DefaultInFlight,
		},
		PartitionsAhead:     store.PartitionsAhead,
		PartitionCheckEvery: time.Hour,
		KeyResync:           30 * time.Second,
	}
}
