package simcmd

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"smartmeters/crypto"
	"smartmeters/server/servecmd"
	"smartmeters/simulator"
)

// Bench returns `smartmeters bench`.
func Bench() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure how many signed readings a server stores per second",
		Description: "Registers --meters fresh meters, signs their readings before the clock starts,\n" +
			"drives the server at its maximum for --duration (or --total readings), then\n" +
			"measures this machine's signature verification ceiling for the key type.\n" +
			"The server's CPU time comes from --admin's /metrics (process_cpu_seconds_total).\n" +
			"efficiency is the cost of one signature verification on one core over the\n" +
			"server's CPU per stored reading. With --mqtt, the readings go through that broker\n" +
			"(--batch readings a message) and are done when their results arrive on\n" +
			"--mqtt-results-topic; latency is per message. The last line is machine-readable:\n" +
			"readings_per_s=N p50_ms=N p99_ms=N errors=N verify_ceiling_per_s=N ratio=N server_cpu_us_per_reading=N efficiency=N",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Value: "http://localhost:8080", Usage: "public base URL", EnvVars: env("SERVER")},
			&cli.StringFlag{Name: "admin", Value: "http://127.0.0.1:8081", Usage: "admin base URL", EnvVars: env("ADMIN")},
			&cli.IntFlag{Name: "meters", Value: 1000, Usage: "meters to register", EnvVars: env("BENCH_METERS")},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long to drive the server", EnvVars: env("BENCH_DURATION")},
			&cli.IntFlag{Name: "total", Usage: "readings to sign and send (RSA signing costs ~1 ms a reading, so size RSA runs by this); 0 sizes from --duration", EnvVars: env("BENCH_TOTAL")},
			&cli.IntFlag{Name: "batch", Value: 1, Usage: "readings per request: 1 uses /reportReading, more /reportReadings", EnvVars: env("BENCH_BATCH")},
			&cli.StringFlag{Name: "key-type", Value: string(crypto.Ed25519), Usage: "rsa2048, ecdsa-p256, ecdsa-p384 or ed25519", EnvVars: env("KEY_TYPE")},
			&cli.IntFlag{Name: "concurrency", Value: 256, Usage: "requests (MQTT messages) in flight", EnvVars: env("CONCURRENCY")},
			servecmd.CACertFlag(),
			&cli.StringFlag{Name: "mqtt", Usage: "MQTT broker to publish the readings through instead of --server (a batch is one message): mqtt://host:1883", EnvVars: env("MQTT")},
			&cli.StringFlag{Name: "mqtt-topic", Value: simulator.DefaultMQTTTopic, Usage: "MQTT topic to publish readings on (serve's --mqtt-topic, without wildcards)", EnvVars: env("MQTT_TOPIC")},
			&cli.StringFlag{Name: "mqtt-results-topic", Value: simulator.DefaultMQTTResultsTopic, Usage: "MQTT topic under which the server publishes results (serve's --mqtt-results-topic)", EnvVars: env("MQTT_RESULTS_TOPIC")},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			kt, err := crypto.ParseKeyType(c.String("key-type"))
			if err != nil {
				return usageError("--key-type %q: want one of %s", c.String("key-type"), keyTypeList())
			}
			for _, name := range []string{"meters", "batch", "concurrency"} {
				if c.Int(name) < 1 {
					return usageError("--%s %d: must be at least 1", name, c.Int(name))
				}
			}
			switch total := c.Int("total"); {
			case total < 0:
				return usageError("--total %d: must be 0 (sized from --duration) or more", total)
			case total == 0 && c.Duration("duration") <= 0:
				return usageError("--duration %s: must be positive, unless --total is given", c.Duration("duration"))
			}
			for _, name := range []string{"server", "admin"} {
				if err := simulator.ValidBaseURL(c.String(name)); err != nil {
					return usageError("--%s %q: %v", name, c.String(name), err)
				}
			}
			roots, err := servecmd.RootCAs(c)
			if err != nil {
				return err
			}
			mqtt, err := mqttConfig(c)
			if err != nil {
				return err
			}
			res, err := simulator.Bench(c.Context, simulator.BenchConfig{
				RootCAs:     roots,
				MQTT:        mqtt,
				PublicURL:   c.String("server"),
				AdminURL:    c.String("admin"),
				Meters:      c.Int("meters"),
				KeyType:     kt,
				Batch:       c.Int("batch"),
				Duration:    c.Duration("duration"),
				Total:       c.Int("total"),
				Concurrency: c.Int("concurrency"),
				Progress:    c.App.ErrWriter,
			})
			if err != nil {
				return err
			}
			w := c.App.Writer
			fmt.Fprintf(w, "stored %d readings/s (%d stored, %d duplicates, %d errors in %d requests over %s)\n",
				int64(res.ReadingsPerSecond()), res.Stored, res.Duplicates, res.Errors, res.Requests, res.Elapsed.Round(time.Millisecond))
			fmt.Fprintf(w, "latency p50 %.2f ms, p99 %.2f ms\n", float64(res.P50)/1e6, float64(res.P99)/1e6)
			fmt.Fprintf(w, "verify ceiling %s: %.0f/s on one core, %.0f/s on all cores\n", kt, res.VerifyOneCore, res.VerifyAllCores)
			fmt.Fprintf(w, "server CPU %.0f µs per stored reading; verification alone would be %.0f µs (efficiency %.2f)\n",
				res.ServerCPUPerReading(), 1e6/res.VerifyOneCore, res.Efficiency())
			fmt.Fprintln(w, res.Line())
			return nil
		},
	}
}
