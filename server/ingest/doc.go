// Package ingest is the hot path of smartmeters: it takes the body of a
// signed report, decodes it strictly, looks the key up (in memory, mostly),
// verifies the signature, checks the clock and the meter's allowance,
// hands the reading to the group commit, and returns the outcome the
// client is told.
//
// It knows nothing of HTTP or of reporting. A transport (the HTTP
// handlers, a message broker) passes bytes in and renders the Result or
// the *api.Problem that comes out; an Observer (live statistics, event
// streams) is told of every reading stored or refused.
//
// The key cache (keycache.go) sits beside the hot path with its
// invalidation: whoever changes a key, here or on another server, calls
// Forget. The group commit (committer.go) writes the readings of
// concurrent reports together.
package ingest
