// Package server composes smartmeters' HTTP service: a public listener
// where meters report signed readings, and an admin listener, reachable
// only from allowed networks, where operators register meters, manage
// their keys and read the fleet back.
//
// The rooms it composes each live in a package of their own: ingest (the
// hot path), reporting (the reporting API, events and the dashboard),
// background (work beside the listeners) and api (the wire contract).
// This package holds what joins them: the routes (routes.go), the
// listeners with their limits and TLS, the one place where errors become
// answers (errors.go), metrics, health, and the small registry API that
// registers meters and changes their keys (registry.go).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/crypto"
	"smartmeters/server/ingest"
	"smartmeters/server/mqtt"
	"smartmeters/server/ratelimit"
	"smartmeters/server/reporting"
	"smartmeters/store"
)

// Stores are the stores the parts of a server read and write, each typed
// as the narrow interface its consumer declares. One *store.Store
// satisfies them all (StoresOf); the reporting side may be given a store
// over a pool of its own, so that it can never take the connections
// ingest needs.
type Stores struct {
	Keys      ingest.KeyStore
	Readings  ingest.ReadingStore
	Registry  RegistryStore
	Reporting reporting.Store
	Health    HealthStore
}

// StoresOf returns Stores that are all st.
func StoresOf(st *store.Store) Stores {
	return Stores{Keys: st, Readings: st, Registry: st, Reporting: st, Health: st}
}

// Server serves the public and the admin API.
type Server struct {
	cfg    Config
	logger *slog.Logger
	public *echo.Echo
	admin  *echo.Echo

	ingest    *ingest.Service
	live      *reporting.Live
	reporting *reporting.API
	registry  *registryAPI
	health    *health
	metrics   *metrics
	mqtt      *mqtt.Intake // nil unless configured
	budget    *memoryBudget
	perAddr   *ratelimit.Buckets[netip.Addr]
	slots     chan struct{} // one per public request in progress; nil means no cap
	requests  atomic.Uint64 // requests answered below 500, for the request log's sampling
}

// New returns a Server over stores. cfg must be complete: start from
// DefaultConfig. Call Close (Serve does) once it serves no more.
func New(cfg Config, stores Stores, logger *slog.Logger) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Ingest.Now = cfg.Now
	for _, f := range []struct {
		name string
		v    int64
	}{{"MaxBodyBytes", cfg.MaxBodyBytes}, {"MaxHeaderBytes", int64(cfg.MaxHeaderBytes)}, {"MemoryBudget", cfg.MemoryBudget}, {"MemoryPerAddress", cfg.MemoryPerAddress}} {
		if f.v < 1 {
			return nil, fmt.Errorf("server: %s %d: must be at least 1", f.name, f.v)
		}
	}
	s := &Server{cfg: cfg, logger: logger, metrics: newMetrics()}
	s.budget = newMemoryBudget(cfg.MemoryBudget, cfg.MemoryPerAddress, s.metrics)
	s.live = reporting.NewLive()
	var err error
	s.ingest, err = ingest.New(cfg.Ingest, stores.Keys, stores.Readings, s.live, s.metrics.registry, logger)
	if err != nil {
		return nil, err
	}
	if cfg.ExportKey == nil {
		if cfg.ExportKey, err = crypto.GenerateKey(crypto.Ed25519, nil); err != nil {
			return nil, fmt.Errorf("server: export key: %w", err)
		}
	}
	s.reporting = reporting.New(stores.Reporting, s.live, cfg.ExportKey, cfg.SilentAfter, s.metrics.registry, cfg.Now, logger)
	s.registry = &registryAPI{
		store: stores.Registry, keys: s.ingest.Keys(), minRSABits: cfg.Ingest.MinRSABits,
		decode: func(c echo.Context, v any) error { return s.decodeBody(c, cfg.MaxBodyBytes, v) },
		now:    cfg.Now, logger: logger,
	}
	s.health = &health{store: stores.Health, schemaCheck: cfg.SchemaCheck, ttl: cfg.SchemaCheckTTL, now: cfg.Now, logger: logger}
	if cfg.MQTT.Broker != "" {
		cfg.MQTT.MaxBody, cfg.MQTT.MaxBatchBody, cfg.MQTT.Now = cfg.MaxBodyBytes, s.batchBodyLimit(), cfg.Now
		s.mqtt, err = mqtt.New(cfg.MQTT, s.ingest, intakeBudget{s.budget}, s.metrics.registry, logger)
		if err != nil {
			return nil, err
		}
		s.health.mqtt = s.mqtt
	}
	s.perAddr = ratelimit.New[netip.Addr](cfg.RatePerAddress, cfg.RateBurstPerAddress)
	if cfg.MaxConcurrentRequests > 0 {
		s.slots = make(chan struct{}, cfg.MaxConcurrentRequests)
	}
	s.public, s.admin = s.newEcho(), s.newEcho()
	s.route()
	return s, nil
}

// MQTT returns the MQTT intake, for the command to run beside the
// listeners, or nil when none is configured.
func (s *Server) MQTT() *mqtt.Intake { return s.mqtt }

// Keys returns the key cache of the ingest path, for whoever follows the
// key changes made through other servers (background.KeyChanges).
func (s *Server) Keys() *ingest.KeyCache { return s.ingest.Keys() }

func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The peer address is the only source of truth: forwarded-for headers
	// are set by whoever sends the request.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = s.renderError
	e.Use(s.logRequests)
	return e
}

// Close stops the group commit after committing what is queued. Call it
// once the listeners are shut down (Serve does).
func (s *Server) Close() {
	s.ingest.Close()
}

// PublicHandler returns the handler of the public listener.
func (s *Server) PublicHandler() http.Handler { return s.public }

// AdminHandler returns the handler of the admin listener.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// Run serves both listeners at the configured addresses until ctx is done;
// see Serve.
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

// Serve serves HTTP on listeners the caller opened until ctx is done, then
// stops accepting connections, lets requests in flight finish (bounded by
// ShutdownTimeout), closes the Server and returns. It returns early with
// an error if a listener fails.
func (s *Server) Serve(ctx context.Context, public, admin net.Listener) error {
	defer s.Close()
	pubTLS, admTLS, err := s.cfg.tlsConfigs()
	if err != nil {
		public.Close()
		admin.Close()
		return err
	}
	servers := []*http.Server{s.httpServer(s.public), s.httpServer(s.admin)}
	listeners := []net.Listener{s.listener(public, pubTLS), s.listener(admin, admTLS)}
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
	s.logger.Info("serving", "public", BaseURL(public.Addr(), pubTLS != nil), "admin", BaseURL(admin.Addr(), admTLS != nil),
		"dashboard", BaseURL(admin.Addr(), admTLS != nil)+"/")

	var runErr error
	select {
	case <-ctx.Done():
		s.logger.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	case runErr = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(shutCtx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("shutdown: %w", err))
		}
	}
	return runErr
}

// BaseURL returns the URL that reaches a listener at addr from this host,
// http or, with tls, https: loopback stands for a listener on every
// interface.
func BaseURL(addr net.Addr, tls bool) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	ap, ok := addr.(*net.TCPAddr)
	if !ok {
		return scheme + addr.String()
	}
	host := ap.IP
	if host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
		if ap.IP.To4() == nil {
			host = net.IPv6loopback
		}
	}
	return scheme + net.JoinHostPort(host.String(), strconv.Itoa(ap.Port))
}

// listener wraps l: every connection holds room in the memory budget for
// its headers while it is open, and TLS, when tlsCfg is set, runs over
// that.
func (s *Server) listener(l net.Listener, tlsCfg *tls.Config) net.Listener {
	cost := int64(s.cfg.MaxHeaderBytes) + connOverhead
	return withTLS(&budgetListener{Listener: l, budget: s.budget, cost: cost, answer: tlsCfg == nil}, tlsCfg)
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
}
