package servecmd

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"smartmeters/crypto"
	"smartmeters/db/migratecmd"
	"smartmeters/server"
	"smartmeters/server/mqtt"
)

// maxCommitWorkers bounds --commit-workers to half of the 16 connections
// the writing pool opens on PostgreSQL (db.Open), so that key lookups and
// the registry never wait behind commits for a connection.
const maxCommitWorkers = 8

// env names a flag's environment variable.
func env(name string) []string { return []string{"SMARTMETERS_" + name} }

// flags are serve's flags; each default is server.DefaultConfig's.
func flags() []cli.Flag {
	def := server.DefaultConfig()
	return []cli.Flag{
		migratecmd.DatabaseURLFlag(),
		&cli.StringFlag{Name: "listen", Value: def.Listen, Usage: "public listener address", EnvVars: env("LISTEN")},
		&cli.StringFlag{Name: "admin-listen", Value: def.AdminListen, Usage: "admin listener address", EnvVars: env("ADMIN_LISTEN")},
		&cli.StringSliceFlag{
			Name:        "admin-allow",
			Usage:       "CIDR allowed on the admin listener; repeat or separate with commas",
			DefaultText: "loopback, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7",
			EnvVars:     env("ADMIN_ALLOW"),
		},
		&cli.IntFlag{Name: "min-rsa-bits", Value: def.Ingest.MinRSABits, Usage: "smallest RSA key accepted, in bits", EnvVars: env("MIN_RSA_BITS")},
		&cli.DurationFlag{Name: "max-clock-skew", Value: def.Ingest.MaxClockSkew, Usage: "how far ahead of the server clock a reading's timestamp may be", EnvVars: env("MAX_CLOCK_SKEW")},
		&cli.BoolFlag{Name: "migrate", Usage: "apply pending migrations on start", DefaultText: "on for the embedded store, off for PostgreSQL", EnvVars: env("MIGRATE")},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json", EnvVars: env("LOG_FORMAT")},
		&cli.IntFlag{Name: "request-log-every", Value: def.RequestLogEvery, Usage: "log every request answered 5xx and one in N of the others (1: every request; 0: only 5xx); all are counted in smartmeters_http_request_seconds", EnvVars: env("REQUEST_LOG_EVERY")},
		&cli.IntFlag{Name: "batch-max", Value: def.Ingest.BatchMax, Usage: "group commit: most readings written in one statement (1 writes each reading on its own)", EnvVars: env("BATCH_MAX")},
		&cli.DurationFlag{Name: "batch-wait", Value: def.Ingest.BatchWait, Usage: "group commit: longest wait for a batch to fill (0 commits what is queued at once)", EnvVars: env("BATCH_WAIT")},
		&cli.IntFlag{Name: "commit-workers", Value: def.Ingest.Committers, Usage: "group commit: batches written at once, each by its own database connection, meters split between them (PostgreSQL; SQLite has one writer)", EnvVars: env("COMMIT_WORKERS")},
		&cli.IntFlag{Name: "key-cache-size", Value: def.Ingest.KeyCacheSize, Usage: "registered keys kept parsed in memory (about 1 KB each for RSA-2048)", EnvVars: env("KEY_CACHE_SIZE")},
		&cli.IntFlag{Name: "max-batch", Value: def.Ingest.MaxBatch, Usage: "most readings accepted in one POST /reportReadings", EnvVars: env("MAX_BATCH")},

		&cli.DurationFlag{Name: "read-header-timeout", Value: def.ReadHeaderTimeout, Usage: "longest time a client may take to send a request's headers", EnvVars: env("READ_HEADER_TIMEOUT")},
		&cli.DurationFlag{Name: "read-timeout", Value: def.ReadTimeout, Usage: "longest time a client may take to send a whole request", EnvVars: env("READ_TIMEOUT")},
		&cli.DurationFlag{Name: "write-timeout", Value: def.WriteTimeout, Usage: "longest time from the end of a request's headers to the end of its answer", EnvVars: env("WRITE_TIMEOUT")},
		&cli.DurationFlag{Name: "idle-timeout", Value: def.IdleTimeout, Usage: "longest time a keep-alive connection may wait for its next request", EnvVars: env("IDLE_TIMEOUT")},
		&cli.Float64Flag{Name: "rate-per-key", Value: def.Ingest.RatePerKey, Usage: "readings a second each meter may have stored, counted after the signature verifies (429 beyond); 0 means no limit", EnvVars: env("RATE_PER_KEY")},
		&cli.IntFlag{Name: "rate-per-key-burst", Usage: "readings a meter may send at once above --rate-per-key", DefaultText: "10 s worth", EnvVars: env("RATE_PER_KEY_BURST")},
		&cli.Float64Flag{Name: "rate-per-address", Value: def.RatePerAddress, Usage: "public requests a second each client address may send (429 beyond); 0 means no limit", EnvVars: env("RATE_PER_ADDRESS")},
		&cli.IntFlag{Name: "rate-per-address-burst", Usage: "requests an address may send at once above --rate-per-address", DefaultText: "10 s worth", EnvVars: env("RATE_PER_ADDRESS_BURST")},
		&cli.IntFlag{Name: "max-concurrent-requests", Value: def.MaxConcurrentRequests, Usage: "reports being verified and stored at once (a report takes its slot once its body is read); beyond it 503 at once; 0 means no cap", EnvVars: env("MAX_CONCURRENT_REQUESTS")},
		&cli.StringFlag{Name: "memory-budget", Value: humanize.IBytes(uint64(def.MemoryBudget)), Usage: "memory that open connections (room for their headers) and request bodies in flight may hold at once; beyond it 503 at once", EnvVars: env("MEMORY_BUDGET")},
		&cli.StringFlag{Name: "memory-per-address", Value: humanize.IBytes(uint64(def.MemoryPerAddress)), Usage: "the part of --memory-budget one client address (an IPv6 /64) may hold", EnvVars: env("MEMORY_PER_ADDRESS")},
		&cli.StringFlag{Name: "max-header-bytes", Value: humanize.IBytes(uint64(def.MaxHeaderBytes)), Usage: "largest request header block", EnvVars: env("MAX_HEADER_BYTES")},
		&cli.StringFlag{Name: "tls-cert", TakesFile: true, Usage: "PEM certificate (chain) file: serve both listeners over TLS (with --tls-key)", EnvVars: env("TLS_CERT")},
		&cli.StringFlag{Name: "tls-key", TakesFile: true, Usage: "PEM private key file of --tls-cert", EnvVars: env("TLS_KEY")},
		&cli.StringFlag{Name: "export-key", TakesFile: true, Usage: "PEM private key (PKCS#8) that signs exports; by default a key the store keeps, made by the first server that needs it", EnvVars: env("EXPORT_KEY")},
		&cli.StringFlag{Name: "admin-client-ca", TakesFile: true, Usage: "PEM CA file: the admin listener demands a client certificate it signed (mutual TLS; needs --tls-cert)", EnvVars: env("ADMIN_CLIENT_CA")},

		&cli.StringFlag{Name: "mqtt-broker", Usage: "MQTT broker to take readings from too: mqtt://host:1883, or mqtts://host:8883 for TLS (a user:password@ in it is sent); empty: no MQTT intake", EnvVars: env("MQTT_BROKER")},
		&cli.StringFlag{Name: "mqtt-topic", Value: def.MQTT.Topic, Usage: "MQTT topic filter readings are published on (+ wildcards allowed); replicas share it as $share/smartmeters/<topic>", EnvVars: env("MQTT_TOPIC")},
		&cli.BoolFlag{Name: "mqtt-shared", Value: def.MQTT.Shared, Usage: "subscribe as $share/smartmeters/<topic>, so that replicas split the readings; --mqtt-shared=false for a single replica on a broker whose shared subscriptions lose messages (Mosquitto 2.0.11 across a broker restart)", EnvVars: env("MQTT_SHARED")},
		&cli.StringFlag{Name: "mqtt-results-topic", Value: def.MQTT.ResultsTopic, Usage: "MQTT topic under which each reading's result is published, as <topic>/<key fingerprint>", EnvVars: env("MQTT_RESULTS_TOPIC")},
		&cli.StringFlag{Name: "mqtt-client-id", Usage: "MQTT client ID of this replica's persistent session: stable across restarts, different for each replica", DefaultText: "smartmeters-<hostname>-<--listen port>", EnvVars: env("MQTT_CLIENT_ID")},
		&cli.IntFlag{Name: "mqtt-in-flight", Value: def.MQTT.InFlight, Usage: "MQTT messages stored at once, each holding room in --memory-budget; the next waits, and the broker keeps the rest", EnvVars: env("MQTT_IN_FLIGHT")},
		&cli.Float64Flag{Name: "mqtt-rate-per-topic", Value: def.MQTT.RatePerTopic, Usage: "MQTT messages a second taken from each topic, in bursts of 10 s worth (refused rate-limited beyond); with a topic per publisher, a per-publisher limit; 0 means no limit", EnvVars: env("MQTT_RATE_PER_TOPIC")},
		&cli.StringFlag{Name: "mqtt-ca-cert", TakesFile: true, Usage: "PEM CA file that signs the mqtts:// broker's certificate; default: the system's CAs", EnvVars: env("MQTT_CA_CERT")},
		&cli.StringFlag{Name: "mqtt-cert", TakesFile: true, Usage: "PEM client certificate file for an mqtts:// broker that demands one (with --mqtt-key)", EnvVars: env("MQTT_CERT")},
		&cli.StringFlag{Name: "mqtt-key", TakesFile: true, Usage: "PEM private key file of --mqtt-cert", EnvVars: env("MQTT_KEY")},

		&cli.DurationFlag{Name: "retention", Value: def.Retention, Usage: "drop readings older than this (by timestamp), a month's partition at a time (PostgreSQL); 0 keeps them all", EnvVars: env("RETENTION")},
		&cli.DurationFlag{Name: "rollup-retention", Value: def.RollupRetention, Usage: "keep the fleet's rollups this long (by timestamp), longer than --retention keeps readings if need be; 0: as long as the readings", EnvVars: env("ROLLUP_RETENTION")},
		&cli.DurationFlag{Name: "rollup-every", Value: def.RollupEvery, Usage: "how often the readings stored are rolled up into the fleet's 5-minute buckets; fleet answers add what is not yet rolled up, so this bounds their cost, not their freshness", EnvVars: env("ROLLUP_EVERY")},
		&cli.DurationFlag{Name: "partitions-ahead", Value: def.PartitionsAhead, Usage: "create readings partitions this far ahead of now (PostgreSQL)", EnvVars: env("PARTITIONS_AHEAD")},
		&cli.DurationFlag{Name: "silent-after", Value: def.SilentAfter, Usage: "a meter without a reading timestamped within this long is silent (reporting API, dashboard, smartmeters_meters); from 1s to 24h", EnvVars: env("SILENT_AFTER")},
		&cli.DurationFlag{Name: "key-resync", Value: def.KeyResync, Usage: "how often key changes of the last two periods are re-read, as a safety net behind LISTEN/NOTIFY (PostgreSQL)", EnvVars: env("KEY_RESYNC")},
	}
}

// config turns serve's flags into a server configuration, refusing values
// out of range.
func config(c *cli.Context) (server.Config, error) {
	cfg := server.DefaultConfig()
	allow, err := parsePrefixes(c.StringSlice("admin-allow"))
	if err != nil {
		return cfg, err
	}
	if allow != nil {
		cfg.AdminAllow = allow
	}
	if c.Int("min-rsa-bits") < 1024 {
		return cfg, fmt.Errorf("--min-rsa-bits %d: must be at least 1024", c.Int("min-rsa-bits"))
	}
	for _, name := range []string{"max-clock-skew", "read-header-timeout", "read-timeout", "write-timeout", "idle-timeout", "key-resync"} {
		if c.Duration(name) <= 0 {
			return cfg, fmt.Errorf("--%s %s: must be positive", name, c.Duration(name))
		}
	}
	if d := c.Duration("silent-after"); d < time.Second || d > 24*time.Hour {
		return cfg, fmt.Errorf("--silent-after %s: must be from 1s to 24h", d)
	}
	for _, name := range []string{"batch-wait", "retention", "partitions-ahead", "rollup-retention"} {
		if c.Duration(name) < 0 {
			return cfg, fmt.Errorf("--%s %s: must not be negative", name, c.Duration(name))
		}
	}
	if n := c.Int("commit-workers"); n > maxCommitWorkers {
		return cfg, fmt.Errorf("--commit-workers %d: at most %d, half the database connections a server opens for writing", n, maxCommitWorkers)
	}
	for _, name := range []string{"batch-max", "commit-workers", "key-cache-size", "max-batch"} {
		if c.Int(name) < 1 {
			return cfg, fmt.Errorf("--%s %d: must be at least 1", name, c.Int(name))
		}
	}
	for _, name := range []string{"rate-per-key", "rate-per-address", "mqtt-rate-per-topic"} {
		if v := c.Float64(name); !(v >= 0) {
			return cfg, fmt.Errorf("--%s %g: must be 0 (no limit) or more", name, v)
		}
	}
	for _, name := range []string{"rate-per-key-burst", "rate-per-address-burst", "max-concurrent-requests", "request-log-every"} {
		if c.Int(name) < 0 {
			return cfg, fmt.Errorf("--%s %d: must not be negative", name, c.Int(name))
		}
	}
	sizes := map[string]int64{}
	for _, name := range []string{"memory-budget", "memory-per-address", "max-header-bytes"} {
		n, err := humanize.ParseBytes(c.String(name))
		if err != nil || n < 1 || n > 1<<40 {
			return cfg, fmt.Errorf("--%s %q: want a size such as 64MiB or 16KiB", name, c.String(name))
		}
		sizes[name] = int64(n)
	}
	if sizes["memory-per-address"] > sizes["memory-budget"] {
		return cfg, fmt.Errorf("--memory-per-address %s is more than --memory-budget %s", c.String("memory-per-address"), c.String("memory-budget"))
	}
	cfg.MemoryBudget, cfg.MemoryPerAddress = sizes["memory-budget"], sizes["memory-per-address"]
	cfg.MaxHeaderBytes = int(min(sizes["max-header-bytes"], 1<<30))
	if (c.String("tls-cert") == "") != (c.String("tls-key") == "") {
		return cfg, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if c.String("admin-client-ca") != "" && c.String("tls-cert") == "" {
		return cfg, fmt.Errorf("--admin-client-ca needs --tls-cert and --tls-key")
	}
	cfg.Listen, cfg.AdminListen = c.String("listen"), c.String("admin-listen")
	cfg.Ingest.MinRSABits = c.Int("min-rsa-bits")
	cfg.Ingest.MaxClockSkew = c.Duration("max-clock-skew")
	cfg.Ingest.BatchMax, cfg.Ingest.BatchWait, cfg.Ingest.Committers = c.Int("batch-max"), c.Duration("batch-wait"), c.Int("commit-workers")
	cfg.Ingest.KeyCacheSize, cfg.Ingest.MaxBatch = c.Int("key-cache-size"), c.Int("max-batch")
	cfg.Ingest.RatePerKey, cfg.Ingest.RateBurstPerKey = c.Float64("rate-per-key"), c.Int("rate-per-key-burst")
	cfg.ReadHeaderTimeout, cfg.ReadTimeout = c.Duration("read-header-timeout"), c.Duration("read-timeout")
	cfg.WriteTimeout, cfg.IdleTimeout = c.Duration("write-timeout"), c.Duration("idle-timeout")
	cfg.RatePerAddress, cfg.RateBurstPerAddress = c.Float64("rate-per-address"), c.Int("rate-per-address-burst")
	cfg.MaxConcurrentRequests = c.Int("max-concurrent-requests")
	cfg.RequestLogEvery = c.Int("request-log-every")
	cfg.TLSCert, cfg.TLSKey, cfg.AdminClientCA = c.String("tls-cert"), c.String("tls-key"), c.String("admin-client-ca")
	cfg.Retention, cfg.PartitionsAhead, cfg.KeyResync = c.Duration("retention"), c.Duration("partitions-ahead"), c.Duration("key-resync")
	cfg.SilentAfter = c.Duration("silent-after")
	cfg.RollupEvery, cfg.RollupRetention = c.Duration("rollup-every"), c.Duration("rollup-retention")
	if cfg.RollupEvery <= 0 {
		return cfg, fmt.Errorf("--rollup-every %s: must be positive", cfg.RollupEvery)
	}
	if cfg.RollupRetention != 0 && cfg.Retention != 0 && cfg.RollupRetention < cfg.Retention {
		return cfg, fmt.Errorf("--rollup-retention %s is shorter than --retention %s: rollups are kept at least as long as their readings", cfg.RollupRetention, cfg.Retention)
	}
	if cfg.MQTT.Broker = c.String("mqtt-broker"); cfg.MQTT.Broker != "" {
		// Checked here, before the store is opened (and a SQLite file
		// made), rather than when the intake starts.
		if _, err := mqtt.ParseBroker(cfg.MQTT.Broker); err != nil {
			return cfg, fmt.Errorf("--mqtt-broker: %w", err)
		}
		cfg.MQTT.Topic, cfg.MQTT.ResultsTopic = c.String("mqtt-topic"), c.String("mqtt-results-topic")
		cfg.MQTT.CACert, cfg.MQTT.Cert, cfg.MQTT.Key = c.String("mqtt-ca-cert"), c.String("mqtt-cert"), c.String("mqtt-key")
		cfg.MQTT.RatePerTopic, cfg.MQTT.Shared = c.Float64("mqtt-rate-per-topic"), c.Bool("mqtt-shared")
		if cfg.MQTT.InFlight = c.Int("mqtt-in-flight"); cfg.MQTT.InFlight < 1 {
			return cfg, fmt.Errorf("--mqtt-in-flight %d: must be at least 1", cfg.MQTT.InFlight)
		}
		if cfg.MQTT.ClientID = c.String("mqtt-client-id"); cfg.MQTT.ClientID == "" {
			cfg.MQTT.ClientID = defaultClientID(cfg.Listen)
		}
	}
	if path := c.String("export-key"); path != "" {
		pemBytes, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("--export-key: %w", err)
		}
		if cfg.ExportKey, err = crypto.ParsePrivateKeyPEM(pemBytes); err != nil {
			return cfg, fmt.Errorf("--export-key %s: %w", path, err)
		}
	}
	return cfg, cfg.CheckTLS()
}

// parsePrefixes parses CIDRs (a bare address counts as a single-host
// prefix); none gives nil.
func parsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return nil, fmt.Errorf("--admin-allow %q: not a CIDR such as 10.0.0.0/8", s)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// defaultClientID is the MQTT client ID of a replica that names none:
// stable across restarts on one host (a pod of a StatefulSet keeps its
// name), and different for replicas that share a host, which listen on
// different ports.
func defaultClientID(listen string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	_, port, _ := net.SplitHostPort(listen)
	return "smartmeters-" + host + "-" + port
}
