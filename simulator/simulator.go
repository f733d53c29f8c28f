package simulator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"smartmeters/crypto"
	"smartmeters/server/api"
)

// Simulator runs a fleet of simulated meters against a server.
type Simulator struct {
	cfg         Config
	st          *stats
	client      *client
	tamper      *tamperer
	reportURL   string
	registerURL string

	rogue    *crypto.PrivateKey // signs the unknown-key forgeries; never registered
	roguePub string
	rogueFP  crypto.Fingerprint

	mqtt *mqttLink // reports go through the broker when set

	ownTransport bool // whether Run closes the transport's connections when done

	acceptedMu sync.Mutex // serialises writes to cfg.AcceptedLog
}

// New returns a Simulator for cfg, or an error naming the first field of
// cfg that is out of range. A zero Seed is replaced by a random one.
func New(cfg Config) (*Simulator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for cfg.Seed == 0 {
		cfg.Seed = rand.Int64()
	}
	own := cfg.Transport == nil
	if own {
		cfg.Transport = newTransport(cfg.Concurrency, cfg.RootCAs)
	}
	st := newStats()
	return &Simulator{
		ownTransport: own,
		cfg:          cfg,
		st:           st,
		client:       &client{http: &http.Client{Transport: cfg.Transport}, cfg: cfg, st: st},
		tamper:       newTamperer(cfg.Tamper, cfg.Seed),
		reportURL:    strings.TrimRight(cfg.PublicURL, "/") + api.PathReportReading,
		registerURL:  strings.TrimRight(cfg.AdminURL, "/") + api.PathRegister,
	}, nil
}

// Run sets up the fleet, then reports readings until every meter has sent
// its share or ctx is done, and returns the summary. Once ctx is done no
// reading is scheduled and no retry starts, and requests in flight get
// Config.Drain to finish before the summary is made.
//
// The error is non-nil only when the fleet could not be set up; whether the
// readings went well is for Summary.Err to say. A Simulator runs once.
func (s *Simulator) Run(ctx context.Context) (*Summary, error) {
	status := startStatus(s.cfg, s.st)
	defer status.stop()
	if s.ownTransport {
		// Idle connections would hold up a graceful shutdown of the server.
		defer s.client.http.CloseIdleConnections()
	}

	setupStart := s.cfg.Now()
	ids, registered, err := s.fleet(ctx)
	if err != nil {
		return nil, err
	}
	keyType := ids[0].Key.Type()
	if s.cfg.Tamper > 0 {
		if s.rogue, err = crypto.GenerateKey(keyType, nil); err != nil {
			return nil, fmt.Errorf("tamper key: %w", err)
		}
		s.roguePub, s.rogueFP = s.rogue.Public().Base64(), s.rogue.Public().Fingerprint()
	}
	if s.cfg.MQTT.Broker != "" {
		if s.mqtt, err = dialMQTT(ctx, s.cfg.MQTT); err != nil {
			return nil, err
		}
		defer s.mqtt.close()
	}
	var last map[string]crypto.Reading
	if registered == 0 { // a fleet of a keys file may have reported before
		if last, err = s.lastReadings(ctx, ids); err != nil {
			return nil, err
		}
	}
	start := s.cfg.Now()
	setup := start.Sub(setupStart)
	meters := make([]*meter, len(ids))
	for i, id := range ids {
		meters[i] = newMeter(id, i, s.cfg.Seed, start.UnixMilli())
		if r, ok := last[id.Username]; ok {
			meters[i].resumeFrom(r)
		}
	}

	status.startReporting()
	hard, stopHard := s.hardContext(ctx)
	defer stopHard()
	jobs := make(chan job, s.cfg.Concurrency)
	var workers sync.WaitGroup
	for range s.cfg.Concurrency {
		workers.Go(func() { s.work(ctx, hard, jobs) })
	}
	s.schedule(ctx, meters, start, jobs)
	workers.Wait()
	took := s.cfg.Now().Sub(start)
	status.stop()

	sum := s.st.summary(took, s.cfg.Tamper)
	sum.Seed = s.cfg.Seed
	sum.KeyType = string(keyType)
	sum.Meters = len(meters)
	sum.Registered = registered
	sum.KeysFile = s.cfg.KeysFile
	sum.RegistrationS = roundTo(setup.Seconds(), 3)
	return &sum, nil
}

// hardContext returns a context that is done Drain after ctx is, which
// bounds the requests still in flight when a run is stopped.
func (s *Simulator) hardContext(ctx context.Context) (context.Context, context.CancelFunc) {
	hard, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(s.cfg.Drain, func() {
			cancel(fmt.Errorf("requests still in flight %s after the run was stopped", s.cfg.Drain))
		})
		context.AfterFunc(hard, func() { t.Stop() })
	})
	return hard, func() {
		stop()
		cancel(nil)
	}
}
