package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// target is one server under load: where its requests go.
type target struct {
	name string
	url  string
}

// run is the outcome of one measured phase against one target.
type run struct {
	requests int
	errors   int
	// firstError describes the first non-2xx answer or transport error.
	firstError string
	elapsed    time.Duration
	// latencies are per request; in an open-loop run they are measured
	// from the request's scheduled start, so queueing behind a slow server
	// counts (no coordinated omission).
	latencies []time.Duration
	// roundRates are the requests/s of each round of an interleaved run.
	roundRates []float64
	// due is, in an open-loop run, each request's scheduled time from the
	// start, in the order of latencies: it tells a few stalls from a
	// steadily slow server.
	due []time.Duration
}

// slowWindows counts the requests of an open-loop run slower than limit
// and the distinct windows of the schedule they fall in.
func (r run) slowWindows(limit, window time.Duration) (slow, windows int) {
	seen := map[time.Duration]bool{}
	for i, d := range r.latencies {
		if d > limit && i < len(r.due) {
			slow++
			seen[r.due[i]/window] = true
		}
	}
	return slow, len(seen)
}

func (r run) perSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// quantile of the latencies, q in [0,1] (nearest rank).
func (r run) quantile(q float64) time.Duration { return quantile(r.latencies, q) }

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// newClient is a keep-alive client for conns concurrent connections to one
// loopback server.
func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
	}
}

// send posts one request and reads the whole answer, so the connection is
// reused. It returns an error for a non-2xx status.
func send(ctx context.Context, c *http.Client, url string, r request) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(r.body))
	if err != nil {
		return err
	}
	req.Header = r.header.Clone()
	req.ContentLength = int64(len(r.body))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(answer))
	}
	return nil
}

// tally gathers latencies and errors from concurrent senders.
type tally struct {
	mu        sync.Mutex
	errors    int
	first     string
	latencies []time.Duration
	due       []time.Duration
}

func (c *tally) record(lat time.Duration, err error) {
	c.recordDue(lat, -1, err)
}

// recordDue records a latency with its scheduled time (due < 0: none).
func (c *tally) recordDue(lat, due time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latencies = append(c.latencies, lat)
	if due >= 0 {
		c.due = append(c.due, due)
	}
	if err != nil {
		c.errors++
		if c.first == "" {
			c.first = err.Error()
		}
	}
}

// closedLoop sends every request once over conns connections, each sending
// its next request as soon as the previous one is answered: the rate at
// saturation.
func closedLoop(ctx context.Context, t target, conns int, reqs []request) run {
	client := newClient(conns)
	defer client.CloseIdleConnections()
	col := &tally{latencies: make([]time.Duration, 0, len(reqs))}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := send(ctx, client, t.url, reqs[i])
				col.record(time.Since(t0), err)
			}
		}()
	}
	wg.Wait()
	return run{requests: len(col.latencies), errors: col.errors, firstError: col.first, elapsed: time.Since(start), latencies: col.latencies}
}

// openLoop sends the requests at a fixed rate whatever the answers, from a
// pool of senders large enough not to be the limit, and measures each
// latency from the time the request was due. client should allow senders
// connections.
func openLoop(ctx context.Context, client *http.Client, t target, rate float64, senders int, reqs []request) run {
	col := &tally{latencies: make([]time.Duration, 0, len(reqs))}
	type job struct {
		i   int
		due time.Time
	}
	jobs := make(chan job, len(reqs))
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				err := send(ctx, client, t.url, reqs[j.i])
				col.recordDue(time.Since(j.due), j.due.Sub(start), err)
			}
		}()
	}
	for i := range reqs {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- job{i: i, due: due}
	}
	close(jobs)
	wg.Wait()
	return run{requests: len(col.latencies), errors: col.errors, firstError: col.first, elapsed: time.Since(start), latencies: col.latencies, due: col.due}
}

// loadJob is one target and the requests it gets in an interleaved run.
type loadJob struct {
	t    target
	reqs []request
}

// interleaved runs the closed loops of several targets in rounds, each
// round giving every target the next slice of its requests in turn, so that
// a burst of load from elsewhere on the machine hits all of them alike. It
// returns one run per job, merged over the rounds.
func interleaved(ctx context.Context, rounds, conns int, jobs []loadJob, before func(round, job int)) []run {
	return inRounds(rounds, jobs, before, func(jb loadJob, reqs []request) run { return closedLoop(ctx, jb.t, conns, reqs) })
}

// interleavedOpen is interleaved for open-loop runs at rate: the targets
// take turns in slices of the schedule, each keeping its connections.
func interleavedOpen(ctx context.Context, rounds int, rate float64, senders int, jobs []loadJob) []run {
	clients := map[string]*http.Client{}
	for _, jb := range jobs {
		clients[jb.t.name] = newClient(senders)
		defer clients[jb.t.name].CloseIdleConnections()
	}
	return inRounds(rounds, jobs, nil, func(jb loadJob, reqs []request) run {
		return openLoop(ctx, clients[jb.t.name], jb.t, rate, senders, reqs)
	})
}

func inRounds(rounds int, jobs []loadJob, before func(round, job int), do func(loadJob, []request) run) []run {
	out := make([]run, len(jobs))
	for round := range rounds {
		for j, jb := range jobs {
			lo, hi := len(jb.reqs)*round/rounds, len(jb.reqs)*(round+1)/rounds
			if before != nil {
				before(round, j)
			}
			r := do(jb, jb.reqs[lo:hi])
			m := &out[j]
			// The schedule of each round follows the target's earlier ones.
			for _, d := range r.due {
				m.due = append(m.due, m.elapsed+d)
			}
			m.requests += r.requests
			m.errors += r.errors
			if m.firstError == "" {
				m.firstError = r.firstError
			}
			m.elapsed += r.elapsed
			m.latencies = append(m.latencies, r.latencies...)
			m.roundRates = append(m.roundRates, r.perSecond())
		}
	}
	return out
}
