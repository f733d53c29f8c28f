// Package server is the HTTP face of smartmeters: a public listener where
// meters report signed readings, and an admin listener, reachable only from
// allowed networks, where operators register meters.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"smartmeters/crypto"
	"smartmeters/store"
)

// Store is what the server needs from storage.
type Store interface {
	CreateMeter(ctx context.Context, m *store.Meter) error
	MeterByFingerprint(ctx context.Context, fp crypto.Fingerprint) (store.Meter, error)
	InsertReadings(ctx context.Context, rs []store.Reading) ([]store.Outcome, error)
	Ping(ctx context.Context) error
	ReportingStore
	FleetStore
}

var _ Store = (*store.Store)(nil)

// Config is the server's configuration; the zero value of a field means its
// default.
type Config struct {
	Listen       string         // public address; default ":8080"
	AdminListen  string         // admin address; default "127.0.0.1:8081"
	AdminAllow   []netip.Prefix // networks allowed on the admin listener; default DefaultAdminAllow
	MinRSABits   int            // smallest RSA modulus accepted; default 2048
	MaxClockSkew time.Duration  // how far ahead of the server clock a reading may be; default 5m
	MaxBodyBytes int64          // largest request body; default 64 KiB
	MaxBatch     int            // most readings in one POST /reportReadings; default 1000

	// Group commit: readings verified by concurrent requests are written
	// together, at most BatchMax in one statement, waiting at most BatchWait
	// for a batch to fill; Committers batches may be in flight at once.
	BatchMax      int           // default 1000; 1 writes each reading on its own
	BatchWait     time.Duration // default 2ms; negative means do not wait
	Committers    int           // default 4; use 1 for SQLite, which has one writer
	CommitTimeout time.Duration // bound on one batch's writes; default 5s

	KeyCacheSize       int           // registered keys kept parsed in memory; default 100,000
	UnknownKeyCacheTTL time.Duration // how long an unknown key is remembered; default 2s

	// ShutdownTimeout bounds how long Run waits for in-flight requests once
	// its context is done; default 30s.
	ShutdownTimeout time.Duration
	Now             func() time.Time // the clock; default time.Now

	// Hardening (limits.go, tls.go): how long a client may take, how much
	// it may send, and TLS. A zero duration means its default.
	ReadHeaderTimeout time.Duration // to read a request's headers; default 5s
	ReadTimeout       time.Duration // to read a whole request; default 30s
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer; default 30s
	IdleTimeout       time.Duration // a keep-alive connection's wait for its next request; default 2m
	// RatePerKey limits the readings a second each meter may have stored
	// (a token bucket of RateBurstPerKey, default ten seconds' worth);
	// RatePerAddress limits the public requests a second of each client
	// address (burst RateBurstPerAddress, likewise). 0 means no limit.
	RatePerKey          float64
	RateBurstPerKey     int
	RatePerAddress      float64
	RateBurstPerAddress int
	// MaxConcurrentRequests caps the public requests in progress; beyond it
	// a request is answered 503 at once. Default 1024; negative means no cap.
	MaxConcurrentRequests int
	// KeyLookupTimeout bounds the store lookup of a key the cache does not
	// hold; default 2s.
	KeyLookupTimeout time.Duration
	// TLSCert and TLSKey name PEM files; set, both listeners serve TLS.
	// AdminClientCA names a PEM file of CAs; set, the admin listener
	// demands a client certificate one of them signed.
	TLSCert, TLSKey, AdminClientCA string

	// Fleet (notify.go, partitions.go, readyz.go): several servers on one
	// store, readings partitions and retention, readiness.
	//
	// KeyChanges delivers the key changes of the other servers on the
	// store; nil means this server is alone on it (SQLite).
	KeyChanges             KeyChangeListener
	KeyResyncInterval      time.Duration // how often recent key events are re-read, and the listener pinged; default 30s
	PartitionsAhead        time.Duration // readings partitions are created this far ahead of now; default 62 days
	PartitionCheckInterval time.Duration // how often partitions are created and expired; default 1h
	Retention              time.Duration // readings older than this are dropped, by whole partitions; 0 keeps them all
	// SchemaCheck, when set, tells /readyz whether the store's schema is
	// what this binary needs (db.CheckSchema); its answer is cached for
	// SchemaCheckTTL (default 5s).
	SchemaCheck    func(context.Context) error
	SchemaCheckTTL time.Duration
}

// DefaultAdminAllow is the admin allowlist when none is configured: loopback
// and the private ranges.
var DefaultAdminAllow = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.AdminListen == "" {
		c.AdminListen = "127.0.0.1:8081"
	}
	if c.AdminAllow == nil {
		c.AdminAllow = DefaultAdminAllow
	}
	if c.MinRSABits == 0 {
		c.MinRSABits = 2048
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = 5 * time.Minute
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.BatchMax <= 0 {
		c.BatchMax = 1000
	}
	if c.BatchWait == 0 {
		c.BatchWait = 2 * time.Millisecond
	}
	if c.Committers <= 0 {
		c.Committers = 4
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 5 * time.Second
	}
	if c.KeyCacheSize <= 0 {
		c.KeyCacheSize = 100_000
	}
	if c.UnknownKeyCacheTTL <= 0 {
		c.UnknownKeyCacheTTL = 2 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c.withHardeningDefaults().withFleetDefaults()
}

// Server serves the public and the admin API over one store.
type Server struct {
	cfg    Config
	store  Store
	logger *slog.Logger
	public *echo.Echo
	admin  *echo.Echo
	live   *liveStats // reporting's view of ingest; see events.go

	metrics *metrics
	keys    *keyCache
	commits *committer
	limits  *limits
	schema  schemaState
}

// New returns a Server with cfg's defaults filled in.
func New(cfg Config, st Store, logger *slog.Logger) *Server {
	s := &Server{cfg: cfg.withDefaults(), store: st, logger: logger}
	s.metrics = newMetrics()
	s.keys = newKeyCache(s.cfg.KeyCacheSize, s.cfg.UnknownKeyCacheTTL, boundedLookups{st, s.cfg.KeyLookupTimeout}, s.cfg.MinRSABits, s.metrics)
	s.commits = newCommitter(st, s.cfg.Committers, s.cfg.BatchMax, s.cfg.BatchWait, s.cfg.CommitTimeout, s.metrics, logger)
	s.limits = newLimits(s.cfg)
	s.public = s.newEcho()
	s.public.Use(s.limitPublic)
	s.public.POST("/reportReading", s.handleReportReading)
	s.public.POST("/reportReadings", s.handleReportReadings)
	s.public.GET("/healthz", s.handleHealthz)
	s.public.GET("/readyz", s.handleReadyz)

	s.admin = s.newEcho()
	s.admin.Use(s.allowAdmin)
	s.admin.POST("/register", s.handleRegister)
	s.admin.GET("/healthz", s.handleHealthz)
	s.admin.GET("/readyz", s.handleReadyz)
	s.admin.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})))
	// Profiles for operators, on the allowlisted listener only.
	s.admin.Any("/debug/pprof/*", echo.WrapHandler(http.DefaultServeMux))
	s.routeReporting(s.admin)
	s.routeLifecycle(s.admin)
	return s
}

func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The peer address is the only source of truth: forwarded-for headers
	// are set by whoever sends the request.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = errorHandler(s.logger)
	e.Use(s.logRequests)
	return e
}

// Close stops the group commit after committing what is queued. Call it
// once the listeners are shut down (Serve does).
func (s *Server) Close() {
	s.commits.close()
}

// PublicHandler returns the handler of the public listener.
func (s *Server) PublicHandler() http.Handler { return s.public }

// AdminHandler returns the handler of the admin listener.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// Run serves both listeners until ctx is done, then stops accepting
// connections, lets in-flight requests finish (bounded by ShutdownTimeout)
// and returns. It returns early with an error if a listener fails.
func (s *Server) Run(ctx context.Context) error {
	pub, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	adm, err := net.Listen("tcp", s.cfg.AdminListen)
	if err != nil {
		pub.Close()
		return fmt.Errorf("admin listen on %s: %w", s.cfg.AdminListen, err)
	}
	return s.Serve(ctx, pub, adm)
}

// Serve is Run on listeners the caller opened. It closes the Server when
// it returns.
func (s *Server) Serve(ctx context.Context, public, admin net.Listener) error {
	pubTLS, admTLS, err := s.cfg.tlsConfigs()
	if err != nil {
		public.Close()
		admin.Close()
		s.Close()
		return err
	}
	servers := []*http.Server{s.httpServer(s.public), s.httpServer(s.admin)}
	listeners := []net.Listener{withTLS(public, pubTLS), withTLS(admin, admTLS)}
	errc := make(chan error, len(servers))
	for i, hs := range servers {
		go func() {
			if err := hs.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				return
			}
			errc <- nil
		}()
	}
	s.logger.Info("serving", "public", public.Addr().String(), "admin", admin.Addr().String())
	stopBackground := s.startBackground(ctx)
	defer stopBackground()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(shutCtx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("shutdown: %w", err))
		}
	}
	s.Close()
	return runErr
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
}

func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz answers 200 when the store answers and its schema is current,
// 503 otherwise, so that an orchestrator can hold traffic back from an
// instance that cannot store.
func (s *Server) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logger.Warn("not ready", "err", err)
		return problem(kindUnavailable, "the store does not answer")
	}
	if err := s.checkSchema(ctx); err != nil {
		s.logger.Warn("not ready", "err", err)
		return problem(kindUnavailable, "the database schema is not what this binary needs; run smartmeters migrate up")
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
