package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"smartmeters/store"
)

// ReadingStore is what the group commit needs from storage: a batch of
// readings inserted in one transaction, with an outcome for each.
type ReadingStore interface {
	InsertReadings(ctx context.Context, rs []store.Reading) ([]store.Outcome, error)
}

// A Grouper is a ReadingStore that commits the readings of some meters
// together more cheaply than others: on a Citus cluster, the meters of one
// shard, whose readings one call commits on the one worker that holds
// them. CommitGroup names a meter's group; the committer gives each group
// to one worker, so that each batch is one call.
type Grouper interface {
	CommitGroup(ctx context.Context, meterID int64) (int64, error)
}

// errClosed is returned by committer.submit once the service is closing.
var errClosed = errors.New("server is shutting down")

// errCommitTimeout is returned by committer.submit when a commit takes
// longer than it may.
var errCommitTimeout = errors.New("the store did not answer in time")

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
//
// Each worker owns the meters whose id (or commit group, when the store is
// a Grouper) is its index modulo the number of workers, and a request's
// readings are split among the workers by meter.
// The store locks a batch's meters for the length of its transaction (to
// keep registers cumulative), so two workers sharing meters would wait on
// each other; owning disjoint meters, they never do. The readings of one
// meter still go to one worker, in the request's order.
type committer struct {
	store     ReadingStore
	grouper   Grouper         // nil: by meter id
	shards    []chan *pending // one queue per worker
	quit      chan struct{}
	closeOnce sync.Once
	batchMax  int
	batchWait time.Duration
	timeout   time.Duration
	metrics   *metrics
	logger    *slog.Logger
	wg        sync.WaitGroup
}

func newCommitter(st ReadingStore, workers, batchMax int, batchWait, timeout time.Duration, m *metrics, logger *slog.Logger) *committer {
	c := &committer{
		store:     st,
		shards:    make([]chan *pending, workers),
		quit:      make(chan struct{}),
		batchMax:  batchMax,
		batchWait: batchWait,
		timeout:   timeout,
		metrics:   m,
		logger:    logger,
	}
	c.grouper, _ = st.(Grouper)
	c.wg.Add(workers)
	for i := range c.shards {
		c.shards[i] = make(chan *pending, 4*batchMax)
		go c.work(c.shards[i])
	}
	return c
}

// submit queues rs for commit and waits for their results, in order. It
// returns early with ctx's error if ctx ends before every reading is
// queued, and with errCommitTimeout if the results take longer than the
// commit timeout and a second (a store that neither answers nor fails);
// readings already queued may still be committed, which a client's resend
// will learn as a duplicate. Once queued, readings are waited for whatever
// ctx does: a client that goes away does not make a stored reading look
// refused.
func (c *committer) submit(ctx context.Context, rs []store.Reading) ([]commitResult, error) {
	limit := time.NewTimer(c.timeout + time.Second)
	defer limit.Stop()
	n := int64(len(c.shards))
	first := c.shardOf(ctx, rs[0].MeterID)
	split := false
	for _, r := range rs[1:] {
		if c.shardOf(ctx, r.MeterID) != first {
			split = true
			break
		}
	}
	if !split { // every single report, and most batches of one meter
		p := &pending{readings: rs, done: make(chan []commitResult, 1)}
		if err := c.enqueue(ctx, limit, first, p); err != nil {
			return nil, err
		}
		return c.await(limit, p)
	}
	// Split by owning worker, keeping each meter's readings in order, and
	// put the results back in the request's order.
	idx := make([][]int, n)
	for i, r := range rs {
		sh := c.shardOf(ctx, r.MeterID)
		idx[sh] = append(idx[sh], i)
	}
	parts := make([]*pending, n)
	for sh, is := range idx {
		if len(is) == 0 {
			continue
		}
		part := make([]store.Reading, len(is))
		for j, i := range is {
			part[j] = rs[i]
		}
		parts[sh] = &pending{readings: part, done: make(chan []commitResult, 1)}
		if err := c.enqueue(ctx, limit, sh, parts[sh]); err != nil {
			return nil, err
		}
	}
	out := make([]commitResult, len(rs))
	for sh, p := range parts {
		if p == nil {
			continue
		}
		res, err := c.await(limit, p)
		if err != nil {
			return nil, err
		}
		for j, i := range idx[sh] {
			out[i] = res[j]
		}
	}
	return out, nil
}

// shardOf returns the index of the worker that owns meter id. A group the
// store cannot name (it does not answer) falls back to the meter's id:
// the commit will tell.
func (c *committer) shardOf(ctx context.Context, id int64) int {
	key := id
	if c.grouper != nil {
		if g, err := c.grouper.CommitGroup(ctx, id); err == nil {
			key = g
		}
	}
	return int(uint64(key) % uint64(len(c.shards)))
}

// enqueue queues p on worker sh.
func (c *committer) enqueue(ctx context.Context, limit *time.Timer, sh int, p *pending) error {
	select {
	case c.shards[sh] <- p:
		return nil
	case <-c.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	case <-limit.C:
		return errCommitTimeout
	}
}

// await waits for p's results, which the commit timeout bounds.
func (c *committer) await(limit *time.Timer, p *pending) ([]commitResult, error) {
	select {
	case out := <-p.done:
		return out, nil
	case <-limit.C:
		return nil, errCommitTimeout
	}
}

// close stops the workers after they have committed everything queued.
// Call it once no more submit calls can start; later calls do nothing.
func (c *committer) close() {
	c.closeOnce.Do(func() { close(c.quit) })
	c.wg.Wait()
}

func (c *committer) work(in chan *pending) {
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
			case first = <-in:
			case <-c.quit:
				c.drain(in, rows)
				return
			}
		}
		batch, next = c.collect(in, append(batch[:0], first), timer)
		c.commit(batch, rows)
	}
}

// drain commits whatever is still queued, one request at a time.
func (c *committer) drain(in chan *pending, rows []store.Reading) {
	for {
		select {
		case p := <-in:
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
func (c *committer) collect(in chan *pending, batch []*pending, timer *time.Timer) (_ []*pending, next *pending) {
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
		case p := <-in:
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
		case p := <-in:
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
// the readings it left undecided are split in halves and retried, in
// order, so that one reading the store refuses cannot fail the others; all
// attempts share ctx's deadline, so an unreachable store fails the batch
// quickly rather than once per reading. Readings the store decided before
// it failed (on a cluster, those of the shards that committed) keep their
// outcomes.
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
	var left []int // undecided
	for i := range rows {
		if i < len(outcomes) && outcomes[i] != 0 {
			out[i].outcome = outcomes[i]
		} else {
			left = append(left, i)
		}
	}
	if len(left) == 1 || ctx.Err() != nil {
		c.logger.Error("commit failed", "readings", len(left), "err", err)
		for _, i := range left {
			out[i].err = err
		}
		return
	}
	if len(left) < len(rows) {
		sub := make([]store.Reading, len(left))
		subOut := make([]commitResult, len(left))
		for j, i := range left {
			sub[j] = rows[i]
		}
		c.insert(ctx, sub, subOut)
		for j, i := range left {
			out[i] = subOut[j]
		}
		return
	}
	half := len(rows) / 2
	c.insert(ctx, rows[:half], out[:half])
	c.insert(ctx, rows[half:], out[half:])
}
