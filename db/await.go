package db

import "context"

// Await runs f, which works on the database with ctx, and returns its
// error, or ctx's as soon as ctx is done, whichever comes first.
//
// database/sql waits for its driver, and a driver waits for its server
// however the context ends: lib/pq cancels a query by asking the server
// over a second connection, which a stalled server or network does not
// answer either, so a call can outlive its deadline by minutes. A caller
// whose answer has a time bound (a key lookup, a readiness probe) runs
// its call through Await. f goes on in the background until the driver
// gives up, holding its connection; the pool's size bounds how many can
// be held so. The caller must not read what f writes unless Await
// returned f's own result.
func Await(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
