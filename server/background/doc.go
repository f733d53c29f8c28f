// Package background holds the work a server does besides answering
// requests, each a unit that `smartmeters serve` starts beside the
// listeners and stops with them: Partitions keeps the readings partitions
// of PostgreSQL created ahead and expired behind; KeyChanges keeps a
// server's key cache in step with the key changes made through the other
// servers on the same database.
package background
