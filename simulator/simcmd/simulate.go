// Package simcmd holds the commands that drive a server with simulated
// meters: `smartmeters simulate`, `smartmeters bench` and `smartmeters
// demo`, which runs a server and the simulator in one process.
package simcmd

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"smartmeters/crypto"
	"smartmeters/server/servecmd"
	"smartmeters/simulator"
)

// Simulate returns `smartmeters simulate`.
func Simulate() *cli.Command {
	return &cli.Command{
		Name:  "simulate",
		Usage: "register a swarm of simulated meters and report signed readings to a server",
		Description: "Each meter gets a key pair and a random username, is registered on the admin\n" +
			"listener, then reports a reading every --interval, starting at a random offset\n" +
			"within the first interval. Failed deliveries (network errors, 5xx, 429) are\n" +
			"retried with backoff; other rejections are counted by problem type.\n\n" +
			"A live status line goes to stderr; the summary goes to stdout (to stderr with\n" +
			"--json, which prints the summary as one JSON object on stdout). The exit status\n" +
			"is 1 when any genuine reading was not accepted or any forged one was.\n\n" +
			"Counting: accepted is a reading stored by this run, answered 201, or 200\n" +
			"duplicate to a retry (an earlier attempt was stored, its answer lost);\n" +
			"duplicates are 200 answers to a first attempt; rejected is the number of\n" +
			"final 4xx answers and rejected_by_reason splits it by problem type; failed\n" +
			"readings ran out of retries. Forged readings (--tamper) are counted apart.\n\n" +
			"With --mqtt, readings are published on --mqtt-topic through that broker instead\n" +
			"(QoS 1), and each one's outcome is the result the server publishes under\n" +
			"--mqtt-results-topic; meters are still registered on --admin.\n\n" +
			"A keys file is a series of PEM \"PRIVATE KEY\" blocks (PKCS#8), one per meter,\n" +
			"each with a \"Username:\" header.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "server", Value: "http://localhost:8080", Usage: "base URL of the public listener", EnvVars: env("SERVER")},
			&cli.StringFlag{Name: "admin", Value: "http://127.0.0.1:8081", Usage: "base URL of the admin listener", EnvVars: env("ADMIN")},
			&cli.StringFlag{Name: "mqtt", Usage: "MQTT broker to publish the readings through instead of --server: mqtt://host:1883", EnvVars: env("MQTT")},
			&cli.StringFlag{Name: "mqtt-topic", Value: simulator.DefaultMQTTTopic, Usage: "MQTT topic to publish readings on (serve's --mqtt-topic, without wildcards)", EnvVars: env("MQTT_TOPIC")},
			&cli.StringFlag{Name: "mqtt-results-topic", Value: simulator.DefaultMQTTResultsTopic, Usage: "MQTT topic under which the server publishes results (serve's --mqtt-results-topic)", EnvVars: env("MQTT_RESULTS_TOPIC")},
			&cli.StringFlag{Name: "accepted-log", TakesFile: true, Usage: "write one line per accepted genuine reading to this file: username,timestamp,whIn,whOut", EnvVars: env("ACCEPTED_LOG")},
			servecmd.CACertFlag(),
		}, simulatorFlags()...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := simulatorConfig(c)
			if err != nil {
				return err
			}
			cfg.PublicURL, cfg.AdminURL = c.String("server"), c.String("admin")
			if cfg.RootCAs, err = servecmd.RootCAs(c); err != nil {
				return err
			}
			if cfg.MQTT, err = mqttConfig(c); err != nil {
				return err
			}
			if path := c.String("accepted-log"); path != "" {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
				if err != nil {
					return fmt.Errorf("--accepted-log: %w", err)
				}
				defer f.Close()
				cfg.AcceptedLog = f
			}
			for _, f := range []string{"server", "admin"} {
				if err := simulator.ValidBaseURL(c.String(f)); err != nil {
					return usageError("--%s %q: %v", f, c.String(f), err)
				}
			}
			_, err = simulate(c, cfg)
			return err
		},
	}
}

// simulatorFlags are the flags of simulate that demo shares.
func simulatorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "meters", Value: 100, Usage: "number of meters", EnvVars: env("METERS")},
		&cli.DurationFlag{Name: "interval", Value: 5 * time.Second, Usage: "time between two readings of a meter", EnvVars: env("INTERVAL")},
		&cli.IntFlag{Name: "readings", Value: 6, Usage: "readings per meter; 0 means until interrupted", EnvVars: env("READINGS")},
		&cli.StringFlag{Name: "key-type", Value: string(crypto.RSA2048), Usage: "key type of new meters: " + keyTypeList(), EnvVars: env("KEY_TYPE")},
		&cli.StringFlag{
			Name: "keys", TakesFile: true, EnvVars: env("KEYS"),
			Usage: "keys file: if it exists, use its first --meters meters (it must hold at least that many; " +
				"--key-type is ignored) and register nothing; if not, check that it can be written, then register new meters and save them there (mode 0600)",
		},
		&cli.IntFlag{Name: "concurrency", Value: simulator.DefaultConcurrency, Usage: "largest number of HTTP requests in flight", EnvVars: env("CONCURRENCY")},
		&cli.Int64Flag{Name: "seed", Usage: "seed of usernames, start offsets, load profiles and tamper choices; 0 picks one at random (keys are always random)", EnvVars: env("SEED")},
		&cli.Float64Flag{Name: "tamper", Usage: "share of readings forged on purpose (bad signature, unknown key, changed replay), 0 to 1", EnvVars: env("TAMPER")},
		&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object on stdout (the readable one goes to stderr)", EnvVars: env("JSON")},
	}
}

// simulatorConfig turns the flags of simulatorFlags into a Config without
// the URLs, refusing values out of range as usage errors.
func simulatorConfig(c *cli.Context) (simulator.Config, error) {
	bad := func(format string, args ...any) (simulator.Config, error) {
		return simulator.Config{}, usageError(format, args...)
	}
	cfg := simulator.Config{
		Meters:      c.Int("meters"),
		Interval:    c.Duration("interval"),
		Readings:    c.Int("readings"),
		KeyType:     crypto.KeyType(c.String("key-type")),
		KeysFile:    c.String("keys"),
		Concurrency: c.Int("concurrency"),
		Seed:        c.Int64("seed"),
		Tamper:      c.Float64("tamper"),
	}
	switch {
	case cfg.Meters < 1:
		return bad("--meters %d: must be at least 1", cfg.Meters)
	case cfg.Interval <= 0:
		return bad("--interval %s: must be positive", cfg.Interval)
	case cfg.Readings < 0:
		return bad("--readings %d: must be 0 (until interrupted) or more", cfg.Readings)
	case cfg.Concurrency < 1:
		return bad("--concurrency %d: must be at least 1", cfg.Concurrency)
	case !(cfg.Tamper >= 0 && cfg.Tamper <= 1):
		return bad("--tamper %g: must be a fraction from 0 to 1", cfg.Tamper)
	}
	if _, err := crypto.ParseKeyType(string(cfg.KeyType)); err != nil {
		return bad("--key-type %q: want one of %s", cfg.KeyType, keyTypeList())
	}
	return cfg, nil
}

func keyTypeList() string {
	names := make([]string, len(crypto.KeyTypes))
	for i, t := range crypto.KeyTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// simulate runs the simulator with cfg, showing the live status on stderr,
// and prints the summary. Its error is the summary's verdict.
func simulate(c *cli.Context, cfg simulator.Config) (*simulator.Summary, error) {
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	cfg.Status = stderr
	cfg.StatusTTY = isTerminal(stderr)
	sim, err := simulator.New(cfg)
	if err != nil {
		return nil, err
	}
	sum, err := sim.Run(c.Context)
	if err != nil {
		return nil, err
	}
	text := stdout
	if c.Bool("json") {
		text = stderr
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(sum); err != nil {
			return nil, fmt.Errorf("write summary: %w", err)
		}
	}
	if err := sum.WriteText(text); err != nil {
		return nil, fmt.Errorf("write summary: %w", err)
	}
	return sum, sum.Err()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// env names a flag's environment variable.
func env(name string) []string { return []string{"SMARTMETERS_" + name} }

// usageError is a malformed command line: one line, exit status 2.
func usageError(format string, args ...any) error {
	return cli.Exit(fmt.Sprintf(format, args...)+" (see --help)", 2)
}

// noArgs refuses positional arguments.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("unexpected argument %q", c.Args().First())
	}
	return nil
}

// mqttConfig reads the --mqtt flags of simulate and bench.
func mqttConfig(c *cli.Context) (simulator.MQTTConfig, error) {
	cfg := simulator.MQTTConfig{Broker: c.String("mqtt"), Topic: c.String("mqtt-topic"), ResultsTopic: c.String("mqtt-results-topic")}
	if cfg.Broker == "" {
		return cfg, nil
	}
	if err := simulator.ValidMQTTBroker(cfg.Broker); err != nil {
		return cfg, usageError("--mqtt %q: %v", cfg.Broker, err)
	}
	for name, topic := range map[string]string{"mqtt-topic": cfg.Topic, "mqtt-results-topic": cfg.ResultsTopic} {
		if topic == "" || strings.ContainsAny(topic, "+#") {
			return cfg, usageError("--%s %q: want a topic name without wildcards", name, topic)
		}
	}
	return cfg, nil
}
