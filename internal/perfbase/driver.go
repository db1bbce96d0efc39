package perfbase

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Client is one transport's client side. The scenario driver (Run) does all
// timing and counting, so both transports are measured by the same code and
// differ only in how they move the bytes.
type Client interface {
	// Connect dials the server and returns once the handshake has completed.
	Connect(ctx context.Context) (Conn, error)
	// Handshake dials the server, waits for the handshake, closes the
	// connection and waits until it is gone. It reports whether the handshake
	// completed (hps counts those).
	Handshake(ctx context.Context) (bool, error)
	// Close releases the client's resources.
	Close() error
}

// Conn is one client connection.
type Conn interface {
	// Upload sends on a new stream: the header asking for no response, then
	// data until n bytes were sent (n > 0) or until the deadline, then FIN. It
	// returns once the server's FIN arrived, with the bytes sent.
	Upload(ctx context.Context, n uint64, until time.Time, p *Progress) (uint64, error)
	// Download asks on a new stream for n bytes (Unbounded with a deadline: then
	// it aborts the receive direction at the deadline) and returns the bytes
	// received.
	Download(ctx context.Context, n uint64, until time.Time, p *Progress) (uint64, error)
	// Request sends req (which starts with the 8-byte header asking for
	// respLen bytes) with FIN on a new stream and reads the response to its FIN.
	// It returns the time from opening the stream to the response's FIN, and
	// returns only once the stream is entirely finished.
	Request(ctx context.Context, req []byte, respLen uint64) (time.Duration, error)
	// Close closes the connection and waits until it is gone.
	Close() error
}

// Run runs cfg's scenario with c and returns the measured result, named
// transport.
func Run(ctx context.Context, transport string, c Client, cfg *ClientConfig) (*Result, error) {
	if cfg.Progress == nil {
		cfg.Progress = &Progress{}
	}
	res := &Result{Transport: transport, Scenario: cfg.Scenario}
	var err error
	switch cfg.Scenario {
	case Upload, Download:
		err = runThroughput(ctx, c, cfg, res)
	case RPS, Latency:
		err = runRequests(ctx, c, cfg, res)
	case HPS:
		err = runHandshakes(ctx, c, cfg, res)
	default:
		err = fmt.Errorf("unknown scenario %q", cfg.Scenario)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", transport, cfg.Scenario, err)
	}
	return res, nil
}

// connectAll opens cfg.Conns connections.
func connectAll(ctx context.Context, c Client, cfg *ClientConfig) ([]Conn, error) {
	conns := make([]Conn, 0, cfg.Conns)
	for range max(cfg.Conns, 1) {
		cn, err := c.Connect(ctx)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("connecting to %s: %w", cfg.Addr(), err)
		}
		conns = append(conns, cn)
	}
	return conns, nil
}

func closeAll(conns []Conn) error {
	var errs []error
	for _, cn := range conns {
		errs = append(errs, cn.Close())
	}
	return errors.Join(errs...)
}

// runThroughput runs upload or download on every stream of every connection
// and measures the bytes over the time until the last stream finished.
func runThroughput(ctx context.Context, c Client, cfg *ClientConfig, res *Result) error {
	conns, err := connectAll(ctx, c, cfg)
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		total uint64
		errs  []error
		wg    sync.WaitGroup
	)
	start := time.Now()
	var until time.Time
	n := cfg.Bytes
	if n == 0 {
		until = start.Add(cfg.Duration)
		if cfg.Scenario == Download {
			n = Unbounded
		}
	}
	for _, cn := range conns {
		for range max(cfg.Streams, 1) {
			wg.Go(func() {
				var got uint64
				var err error
				if cfg.Scenario == Upload {
					got, err = cn.Upload(ctx, n, until, cfg.Progress)
				} else {
					got, err = cn.Download(ctx, n, until, cfg.Progress)
				}
				mu.Lock()
				total += got
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Bytes = total
	errs = append(errs, closeAll(conns))
	return errors.Join(errs...)
}

// runRequests runs cfg.Streams request loops on every connection for the
// duration: rps (many streams) and latency (one).
func runRequests(ctx context.Context, c Client, cfg *ClientConfig, res *Result) error {
	conns, err := connectAll(ctx, c, cfg)
	if err != nil {
		return err
	}
	req := make([]byte, max(cfg.Request, HeaderLen))
	copy(req, Payload(len(req)))
	EncodeHeader(req, cfg.Response)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		samples []time.Duration
		errs    []error
		wg      sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(cfg.Duration)
	for _, cn := range conns {
		for range max(cfg.Streams, 1) {
			wg.Go(func() {
				local := make([]time.Duration, 0, 1024)
				var ferr error
				for runCtx.Err() == nil {
					lat, err := cn.Request(runCtx, req, cfg.Response)
					if time.Now().After(end) {
						break
					}
					if err != nil {
						ferr = err
						break
					}
					local = append(local, lat)
					cfg.Progress.Requests.Add(1)
				}
				mu.Lock()
				samples = append(samples, local...)
				if ferr != nil && runCtx.Err() == nil {
					errs = append(errs, ferr)
				}
				mu.Unlock()
			})
		}
	}
	timer := time.NewTimer(cfg.Duration)
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	res.Elapsed = time.Since(start)
	cancel()
	wg.Wait()
	res.Requests = uint64(len(samples))
	res.Latency = Summarize(samples)
	errs = append(errs, closeAll(conns))
	if len(errs) > 0 && errors.Join(errs...) != nil {
		return errors.Join(errs...)
	}
	return ctx.Err()
}

// maxFailures is how many failed handshakes a hps run tolerates before it
// gives up, unless more handshakes succeeded (a loaded server may refuse one
// now and then; secnetperf, too, counts only the handshakes that completed).
const maxFailures = 100

// runHandshakes runs cfg.Conns dialers for the duration, each completing one
// handshake after another. Failed handshakes are counted, not fatal.
func runHandshakes(ctx context.Context, c Client, cfg *ClientConfig, res *Result) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		count    uint64
		failures uint64
		lastErr  error
		wg       sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(cfg.Duration)
	for range max(cfg.Conns, 1) {
		wg.Go(func() {
			for runCtx.Err() == nil {
				ok, err := c.Handshake(runCtx)
				if time.Now().After(end) || runCtx.Err() != nil {
					return
				}
				mu.Lock()
				if ok {
					count++
					cfg.Progress.Handshakes.Add(1)
				}
				if err != nil {
					failures++
					lastErr = err
				}
				giveUp := failures > maxFailures && failures > count
				mu.Unlock()
				if giveUp {
					cancel()
					return
				}
			}
		})
	}
	timer := time.NewTimer(cfg.Duration)
	select {
	case <-timer.C:
	case <-runCtx.Done():
		timer.Stop()
	}
	res.Elapsed = time.Since(start)
	cancel()
	wg.Wait()
	res.Handshakes, res.Failures = count, failures
	if lastErr != nil {
		res.LastError = lastErr.Error()
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case count == 0 && lastErr != nil, failures > maxFailures && failures > count:
		return fmt.Errorf("%d of %d handshakes failed, the last with: %w", failures, count+failures, lastErr)
	}
	return nil
}
