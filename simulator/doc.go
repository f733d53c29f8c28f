// Package simulator drives a smartmeters server with a swarm of simulated
// meters, to demonstrate it and to measure it under load.
//
// A run has two phases. First the fleet: one key pair and one username per
// meter, generated in parallel and registered on the admin listener
// (POST /register), or loaded from a keys file written by an earlier run.
// Then reporting: every meter reports a signed reading to the public
// listener (POST /reportReading) once per interval, starting at a random
// offset within the first interval, until it has sent its share of readings
// or the context is done.
//
// The readings are plausible: each meter has its own household load profile
// (a base load, a morning and an evening peak, noise) and, for most meters,
// rooftop solar (a bell curve between 6h and 20h local time, dimmed by
// clouds). Net metering integrates import and export over the elapsed time,
// so the cumulative registers never decrease.
//
// One scheduler goroutine keeps the meters in a min-heap ordered by their
// next due time and hands readings to a fixed pool of workers, one per
// allowed in-flight request, so a run of 100,000 meters costs 100,000 small
// structs, not 100,000 goroutines and timers. Due times are absolute, so a
// late reading does not delay the ones after it; how late each reading was
// sent is measured as schedule lag.
//
// Delivery retries network errors, 5xx and 429 answers with capped
// exponential backoff and full jitter, honouring Retry-After, and resends
// the same signed bytes, which the server stores at most once. Other 4xx
// answers are final and counted by problem type.
//
// With Config.Tamper, a share of the readings is forged on purpose (a
// corrupted signature, a key that was never registered, or a changed replay
// of a reading the server has accepted) to check that the server refuses
// each one.
//
// The Summary tells what happened; Summary.Err reports a failed run.
package simulator
