package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"smartmeters/store"
)

// errClosed is returned by committer.submit once the server is closing.
var errClosed = errors.New("server is shutting down")

// pending is the verified readings of one request, waiting for the batch
// they are part of to commit. A request's readings always share a batch, so
// that the store resolves them in order.
type pending struct {
	readings []store.Reading
	done     chan []commitResult // buffered: a worker never blocks on a reply
}

type commitResult struct {
	outcome store.Outcome
	err     error
}

// committer writes readings verified by concurrent requests together: each
// worker takes what is queued, waits at most batchWait for more, up to
// batchMax readings, and commits them as one statement. Every reading is
// answered with its own outcome only after its batch has committed.
type committer struct {
	store     Store
	in        chan *pending
	quit      chan struct{}
	batchMax  int
	batchWait time.Duration
	timeout   time.Duration
	metrics   *metrics
	logger    *slog.Logger
	wg        sync.WaitGroup
}

func newCommitter(st Store, workers, batchMax int, batchWait, timeout time.Duration, m *metrics, logger *slog.Logger) *committer {
	c := &committer{
		store:     st,
		in:        make(chan *pending, 4*batchMax),
		quit:      make(chan struct{}),
		batchMax:  batchMax,
		batchWait: batchWait,
		timeout:   timeout,
		metrics:   m,
		logger:    logger,
	}
	c.wg.Add(workers)
	for range workers {
		go c.work()
	}
	return c
}

// submit queues rs for commit and waits for their results, in order. It
// returns early with ctx's error if ctx ends first; readings already queued
// may still be committed, which a client's resend will learn as a duplicate.
func (c *committer) submit(ctx context.Context, rs []store.Reading) ([]commitResult, error) {
	p := &pending{readings: rs, done: make(chan []commitResult, 1)}
	select {
	case c.in <- p:
	case <-c.quit:
		return nil, errClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case out := <-p.done:
		return out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stops the workers after they have committed everything queued.
// Call it once no more submit calls can start.
func (c *committer) close() {
	close(c.quit)
	c.wg.Wait()
}

func (c *committer) work() {
	defer c.wg.Done()
	var (
		batch []*pending
		rows  = make([]store.Reading, 0, c.batchMax)
		timer = time.NewTimer(time.Hour)
		next  *pending // a request that did not fit in the previous batch
	)
	timer.Stop()
	for {
		first := next
		if first == nil {
			select {
			case first = <-c.in:
			case <-c.quit:
				c.drain(rows)
				return
			}
		}
		batch, next = c.collect(append(batch[:0], first), timer)
		c.commit(batch, rows)
	}
}

// drain commits whatever is still queued, one request at a time.
func (c *committer) drain(rows []store.Reading) {
	for {
		select {
		case p := <-c.in:
			c.commit([]*pending{p}, rows)
		default:
			return
		}
	}
}

// collect adds queued requests to batch: all that are waiting now, then
// whatever arrives within batchWait, while the batch stays within batchMax
// readings. It returns the first request that did not fit, if any, to
// start the next batch; a request larger than batchMax is a batch of its
// own.
func (c *committer) collect(batch []*pending, timer *time.Timer) (_ []*pending, next *pending) {
	n := 0
	for _, p := range batch {
		n += len(p.readings)
	}
	add := func(p *pending) bool {
		if n+len(p.readings) > c.batchMax {
			next = p
			return false
		}
		batch, n = append(batch, p), n+len(p.readings)
		return true
	}
	var waiting <-chan time.Time // armed once the queue first runs dry
	defer timer.Stop()
	for n < c.batchMax {
		select {
		case p := <-c.in:
			if !add(p) {
				return batch, next
			}
			continue
		default:
		}
		if waiting == nil {
			if c.batchWait <= 0 {
				return batch, nil
			}
			timer.Reset(c.batchWait)
			waiting = timer.C
		}
		select {
		case p := <-c.in:
			if !add(p) {
				return batch, next
			}
		case <-waiting:
			return batch, nil
		case <-c.quit:
			return batch, nil
		}
	}
	return batch, nil
}

// commit writes the readings of batch as one statement and answers each
// request with its own results.
func (c *committer) commit(batch []*pending, rows []store.Reading) {
	rows = rows[:0]
	for _, p := range batch {
		rows = append(rows, p.readings...)
	}
	out := make([]commitResult, len(rows))
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	c.metrics.batchSize.Observe(float64(len(rows)))
	c.insert(ctx, rows, out)
	off := 0
	for _, p := range batch {
		n := len(p.readings)
		p.done <- out[off : off+n : off+n]
		off += n
	}
}

// insert stores rows and fills out. If the store refuses the statement,
// the rows are split in halves and retried, in order, so that one reading
// the store refuses cannot fail the others; all attempts share ctx's
// deadline, so an unreachable store fails the batch quickly rather than
// once per reading.
func (c *committer) insert(ctx context.Context, rows []store.Reading, out []commitResult) {
	start := time.Now()
	outcomes, err := c.store.InsertReadings(ctx, rows)
	c.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	if err == nil {
		for i, o := range outcomes {
			out[i].outcome = o
		}
		return
	}
	if len(rows) == 1 || ctx.Err() != nil {
		c.logger.Error("commit failed", "readings", len(rows), "err", err)
		for i := range out {
			out[i].err = err
		}
		return
	}
	half := len(rows) / 2
	c.insert(ctx, rows[:half], out[:half])
	c.insert(ctx, rows[half:], out[half:])
}
