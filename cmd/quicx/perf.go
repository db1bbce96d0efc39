package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"quicx.dev/internal/perfbase"
	"quicx.dev/quicx"
)

const perfSynopsis = `secnetperf's protocol (ALPN "perf", port 4433): on every bidirectional stream
the client sends an 8-byte big-endian response length, its upload and FIN; the
server answers with that many bytes and FIN. quicx perf is wire-compatible with
MsQuic's secnetperf in both roles.

Three modes:
  quicx perf -server [-bind ADDR] [-port 4433] [-transport quicx|quic-go]
      serve until interrupted.
  quicx perf -target HOST [-port 4433] [-scenario S] [-transport T]
      run client scenarios against a server (quicx, quic-go or secnetperf).
  quicx perf [-scenario S] [-transport T]
      no -server and no -target: for every run, start an in-process server of
      the same transport on 127.0.0.1 and run the client against it.

Scenarios (secnetperf's): upload and download (timed with -duration, or
-bytes per stream), rps (512 B up / 4000 B down on 100 parallel streams),
hps (handshakes per second, 16 dialers per CPU) and latency (one request at a
time; p50/p90/p99/p99.9/max). "all" runs them in that order.

-transport both runs every scenario on quicx and on raw quic-go, alternating
for -rounds rounds, and prints both (the median of the rounds) and the ratio
quicx/quic-go (quic-go/quicx for latency, so that above 1 is always better).
A progress line goes to stderr on runs longer than a second.`

// perfFlags are the parsed command line.
type perfFlags struct {
	server    bool
	target    string
	port      uint
	bind      string
	scenario  string
	transport string
	duration  time.Duration
	bytes     uint64
	request   uint64
	response  uint64
	streams   int
	conns     int
	ioSize    int
	rounds    int
	exec      string
	events    bool
	sni       string
	certFile  string
	keyFile   string
	jsonOut   bool
	markdown  bool
	chart     string
	progress  bool
	cpuProf   string
	memProf   string
}

func runPerf(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("perf", perfSynopsis, stderr)
	var f perfFlags
	fs.BoolVar(&f.server, "server", false, "run a server until interrupted")
	fs.StringVar(&f.target, "target", "", "the server to run the client against (host name or IP); none: an in-process server per run")
	fs.UintVar(&f.port, "port", perfbase.DefaultPort, "the server's UDP port (0 with -server: any free port)")
	fs.StringVar(&f.bind, "bind", "::", "-server: the local address to listen on")
	fs.StringVar(&f.scenario, "scenario", "all", "upload, download, rps, hps, latency or all")
	fs.StringVar(&f.transport, "transport", "both", "quicx, quic-go, or both (client only; a server defaults to quicx)")
	fs.DurationVar(&f.duration, "duration", 5*time.Second, "length of each timed run")
	fs.Uint64Var(&f.bytes, "bytes", 0, "bytes per stream instead of a timed run: upload sends them (the 8-byte header included), download asks for them")
	fs.Uint64Var(&f.request, "request", 512, "rps/latency: bytes sent per request, the 8-byte header included")
	fs.Uint64Var(&f.response, "response", 4000, "rps/latency: bytes received per request")
	fs.IntVar(&f.streams, "streams", 0, "parallel streams per connection (default: 100 for rps, else 1)")
	fs.IntVar(&f.conns, "conns", 0, "connections; for hps the parallel dialers (default: 16 per CPU for hps, else 1)")
	fs.IntVar(&f.ioSize, "iosize", perfbase.DefaultIO, "bytes per send and per receive buffer")
	fs.IntVar(&f.rounds, "rounds", 1, "runs per scenario and transport (alternating); the median is reported")
	fs.StringVar(&f.exec, "exec", "auto", "quicx execution profile: lowlat, maxtput, or auto (secnetperf's: maxtput for upload, download and hps)")
	fs.BoolVar(&f.events, "events", false, "quicx: subscribe to every transport event (Settings.TransportEvents = TrackAll; the default, like quicx's, is none: the perf protocol needs none of them)")
	fs.StringVar(&f.sni, "sni", "", "client: the TLS server name (default: -target)")
	fs.StringVar(&f.certFile, "cert", "", "-server: certificate PEM file (default: a fresh self-signed certificate)")
	fs.StringVar(&f.keyFile, "key", "", "-server: private key PEM file")
	fs.BoolVar(&f.jsonOut, "json", false, "print the results as JSON instead of text")
	fs.BoolVar(&f.markdown, "markdown", false, "also print the summary as Markdown tables (to stderr with -json)")
	fs.StringVar(&f.chart, "chart", "", "write a PNG bar chart of the summary to this file")
	fs.BoolVar(&f.progress, "progress", true, "show a progress line on stderr during runs longer than a second")
	fs.StringVar(&f.cpuProf, "cpuprofile", "", "write a CPU profile of the whole command to this file")
	fs.StringVar(&f.memProf, "memprofile", "", "write an allocation profile to this file at the end")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.cpuProf != "" {
		stop, err := perfStartCPUProfile(f.cpuProf)
		if err != nil {
			return err
		}
		defer stop()
	}
	if f.memProf != "" {
		defer perfWriteMemProfile(f.memProf, stderr)
	}
	bad := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "quicx perf: "+format+"\n", a...)
		return errUsage
	}
	if f.port > 65535 {
		return bad("-port %d out of range", f.port)
	}
	if f.ioSize < 2*perfbase.HeaderLen || f.ioSize > 64<<20 {
		return bad("-iosize must be between 16 and 64 MiB")
	}
	if f.server && f.target != "" {
		return bad("-server and -target exclude each other")
	}
	if f.server {
		if f.transport == "both" {
			f.transport = "quicx"
		}
		if f.transport != "quicx" && f.transport != "quic-go" {
			return bad("-transport must be quicx or quic-go for a server")
		}
		return perfServe(ctx, &f, stdout)
	}
	transports, err := perfParseTransports(f.transport)
	if err != nil {
		return bad("%v", err)
	}
	scenarios, err := perfParseScenarios(f.scenario)
	if err != nil {
		return bad("%v", err)
	}
	switch {
	case f.rounds < 1:
		return bad("-rounds must be at least 1")
	case f.duration <= 0:
		return bad("-duration must be positive")
	case f.bytes != 0 && f.bytes < perfbase.HeaderLen:
		return bad("-bytes must be at least %d (the header)", perfbase.HeaderLen)
	case f.request < perfbase.HeaderLen:
		return bad("-request must be at least %d (the header)", perfbase.HeaderLen)
	case f.streams < 0 || f.conns < 0:
		return bad("-streams and -conns must not be negative")
	}
	if _, err := perfExecProfile(f.exec, perfbase.RPS); err != nil {
		return bad("%v", err)
	}
	return perfClients(ctx, &f, scenarios, transports, stdout, stderr)
}

func perfParseTransports(s string) ([]string, error) {
	switch s {
	case "quicx", "quic-go":
		return []string{s}, nil
	case "both":
		return []string{"quicx", "quic-go"}, nil
	}
	return nil, fmt.Errorf("unknown -transport %q (quicx, quic-go or both)", s)
}

func perfParseScenarios(s string) ([]perfbase.Scenario, error) {
	if s == "all" {
		return perfbase.Scenarios, nil
	}
	var out []perfbase.Scenario
	for name := range strings.SplitSeq(s, ",") {
		sc := perfbase.Scenario(strings.TrimSpace(name))
		if !slices.Contains(perfbase.Scenarios, sc) {
			return nil, fmt.Errorf("unknown -scenario %q (upload, download, rps, hps, latency or all)", name)
		}
		out = append(out, sc)
	}
	return out, nil
}

// perfExecProfile picks the quicx execution profile for a scenario.
func perfExecProfile(exec string, sc perfbase.Scenario) (quicx.ExecutionProfile, error) {
	switch exec {
	case "lowlat":
		return quicx.ProfileLowLatency, nil
	case "maxtput":
		return quicx.ProfileMaxThroughput, nil
	case "auto":
		if sc == perfbase.Upload || sc == perfbase.Download || sc == perfbase.HPS {
			return quicx.ProfileMaxThroughput, nil
		}
		return quicx.ProfileLowLatency, nil
	}
	return 0, fmt.Errorf("unknown -exec %q (lowlat, maxtput or auto)", exec)
}

// perfServer is a running server of either transport.
type perfServer interface {
	Addr() netip.AddrPort
	Close() error
}

func startPerfServer(transport string, addr netip.AddrPort, cert *tls.Certificate, ioSize int, opt quicxOptions) (perfServer, error) {
	if transport == "quic-go" {
		return perfbase.Listen(addr, *cert, perfbase.ServerSettings(), ioSize)
	}
	return listenQuicx(addr, cert, ioSize, opt)
}

func perfServe(ctx context.Context, f *perfFlags, stdout io.Writer) error {
	cert, err := perfCertificate(f.certFile, f.keyFile)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(f.bind)
	if err != nil {
		return fmt.Errorf("-bind: %w", err)
	}
	exec := f.exec
	if exec == "auto" {
		exec = "lowlat" // secnetperf's server default
	}
	profile, err := perfExecProfile(exec, "")
	if err != nil {
		return err
	}
	srv, err := startPerfServer(f.transport, netip.AddrPortFrom(ip, uint16(f.port)), cert, f.ioSize, quicxOptions{profile: profile, events: f.events})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "quicx perf: %s server listening on %s\n", f.transport, srv.Addr())
	<-ctx.Done()
	return srv.Close()
}

func perfCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" && keyFile == "" {
		return quicx.SelfSignedCertificate()
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the certificate: %w", err)
	}
	return &cert, nil
}

// perfClientConfig builds one run's configuration from the flags.
func perfClientConfig(f *perfFlags, sc perfbase.Scenario, host string, port uint16) *perfbase.ClientConfig {
	cfg := &perfbase.ClientConfig{
		Scenario:   sc,
		Host:       host,
		Port:       port,
		ServerName: f.sni,
		Duration:   f.duration,
		Request:    f.request,
		Response:   f.response,
		Streams:    f.streams,
		Conns:      f.conns,
		IOSize:     f.ioSize,
		Settings:   perfbase.ClientSettings(),
	}
	if cfg.ServerName == "" {
		cfg.ServerName = f.target
		if cfg.ServerName == "" {
			cfg.ServerName = "localhost"
		}
	}
	if sc == perfbase.Upload || sc == perfbase.Download {
		cfg.Bytes = f.bytes
	}
	if cfg.Streams == 0 {
		cfg.Streams = 1
		if sc == perfbase.RPS {
			cfg.Streams = 100
		}
	}
	if sc == perfbase.Latency {
		cfg.Streams = 1
	}
	if cfg.Conns == 0 {
		cfg.Conns = 1
		if sc == perfbase.HPS {
			cfg.Conns = 16 * runtime.NumCPU()
		}
	}
	return cfg
}

// perfClients runs every scenario on every transport, rounds times, and
// prints the results.
func perfClients(ctx context.Context, f *perfFlags, scenarios []perfbase.Scenario, transports []string, stdout, stderr io.Writer) error {
	host, port := "127.0.0.1", uint16(f.port)
	var cert *tls.Certificate
	if f.target != "" {
		ip, err := perfResolveHost(ctx, f.target)
		if err != nil {
			return err
		}
		host = ip.String()
	} else {
		var err error
		if cert, err = quicx.SelfSignedCertificate(); err != nil {
			return err
		}
	}
	var runs []*perfbase.Result
	for _, sc := range scenarios {
		for round := range f.rounds {
			for _, tr := range transports {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res, err := perfRun(ctx, f, sc, tr, host, port, cert, stderr)
				if err != nil {
					return err
				}
				runs = append(runs, res)
				if !f.jsonOut {
					fmt.Fprintf(stdout, "%-8s %-7s round %d  %s\n", sc, tr, round+1, perfDescribe(res))
				}
			}
		}
	}
	sum := perfSummarize(runs, scenarios, transports)
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(perfReport{Runs: runs, Summary: sum}); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout)
		printPerfSummary(stdout, sum, transports)
	}
	if f.markdown {
		md := stdout
		if f.jsonOut {
			md = stderr // keep stdout one JSON document
		}
		fmt.Fprintln(md)
		printPerfMarkdown(md, sum, transports)
	}
	if f.chart != "" {
		if err := writeChart(f.chart, sum, transports); err != nil {
			return fmt.Errorf("writing the chart: %w", err)
		}
	}
	return nil
}

func perfResolveHost(ctx context.Context, host string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		if err == nil {
			err = errors.New("no addresses")
		}
		return netip.Addr{}, fmt.Errorf("resolving %s: %w", host, err)
	}
	return ips[0].Unmap(), nil
}

// perfRun runs one scenario once on one transport, with an in-process server
// when there is no target.
func perfRun(ctx context.Context, f *perfFlags, sc perfbase.Scenario, transport, host string, port uint16, cert *tls.Certificate, stderr io.Writer) (*perfbase.Result, error) {
	profile, err := perfExecProfile(f.exec, sc)
	if err != nil {
		return nil, err
	}
	opt := quicxOptions{profile: profile, events: f.events}
	if cert != nil {
		srv, err := startPerfServer(transport, netip.MustParseAddrPort("127.0.0.1:0"), cert, f.ioSize, opt)
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		port = srv.Addr().Port()
	}
	cfg := perfClientConfig(f, sc, host, port)
	cfg.Progress = &perfbase.Progress{}
	var client perfbase.Client
	if transport == "quic-go" {
		client = perfbase.NewQUICGoClient(cfg)
	} else {
		if client, err = newQuicxClient(cfg, opt); err != nil {
			return nil, err
		}
	}
	runtime.GC() // every run starts from a collected heap
	var before, after runtime.MemStats
	created := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(created)
	goBefore := created[0].Value
	cpuBefore := perfProcessCPU()
	runtime.ReadMemStats(&before)
	stop := func() {}
	if f.progress && (cfg.Bytes == 0 && cfg.Duration > time.Second) {
		stop = showProgress(stderr, fmt.Sprintf("%s %s", transport, sc), cfg)
	}
	res, err := perfbase.Run(ctx, transport, client, cfg)
	stop()
	runtime.ReadMemStats(&after)
	cpu := perfProcessCPU() - cpuBefore
	metrics.Read(created)
	if res != nil {
		res.AllocBytes = after.TotalAlloc - before.TotalAlloc
		res.Allocs = after.Mallocs - before.Mallocs
		res.CPU = cpu
		if goBefore.Kind() == metrics.KindUint64 && created[0].Value.Kind() == metrics.KindUint64 {
			res.Goroutines = created[0].Value.Uint64() - goBefore.Uint64()
		}
	}
	return res, errors.Join(err, client.Close())
}

// showProgress prints a carriage-return-updated line with the run's rate
// every half second until the returned function is called.
func showProgress(w io.Writer, label string, cfg *perfbase.ClientConfig) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		start := time.Now()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		var lastBytes, lastReqs, lastHS uint64
		last := start
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r%s\r", strings.Repeat(" ", 72))
				return
			case now := <-t.C:
				p := cfg.Progress
				secs := now.Sub(last).Seconds()
				b, r, h := p.Bytes.Load(), p.Requests.Load(), p.Handshakes.Load()
				var rate string
				switch cfg.Scenario {
				case perfbase.Upload, perfbase.Download:
					rate = fmt.Sprintf("%.2f Gbit/s", float64(b-lastBytes)*8/secs/1e9)
				case perfbase.HPS:
					rate = fmt.Sprintf("%.0f hs/s", float64(h-lastHS)/secs)
				default:
					rate = fmt.Sprintf("%.0f req/s", float64(r-lastReqs)/secs)
				}
				lastBytes, lastReqs, lastHS, last = b, r, h, now
				fmt.Fprintf(w, "\r%-24s %5.1fs / %.0fs  %-16s", label, now.Sub(start).Seconds(), cfg.Duration.Seconds(), rate)
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// perfDescribe renders one run's result.
func perfDescribe(r *perfbase.Result) string {
	return perfDescribeValue(r) + perfCostLine(r)
}

// perfCostLine renders the run's costs per unit of work.
func perfCostLine(r *perfbase.Result) string {
	if r.Ops() <= 0 || r.Allocs == 0 {
		return ""
	}
	c := r.PerOp()
	return fmt.Sprintf("  [per %s: %.1f µs CPU, %.0f B in %.1f allocs, %.2f goroutines]", r.Scenario.OpName(), c.CPU, c.AllocBytes, c.Allocs, c.Goroutines)
}

func perfDescribeValue(r *perfbase.Result) string {
	secs := r.Elapsed.Seconds()
	switch r.Scenario {
	case perfbase.Upload, perfbase.Download:
		return fmt.Sprintf("%8.3f Gbit/s  (%d bytes in %.3f s)", r.Value(), r.Bytes, secs)
	case perfbase.RPS:
		return fmt.Sprintf("%8.0f req/s   (%d requests in %.3f s; %s)", r.Value(), r.Requests, secs, perfLatencyLine(r.Latency))
	case perfbase.HPS:
		failed := ""
		if r.Failures > 0 {
			failed = fmt.Sprintf(", %d failed, the last with %q", r.Failures, r.LastError)
		}
		return fmt.Sprintf("%8.0f hs/s    (%d handshakes in %.3f s%s)", r.Value(), r.Handshakes, secs, failed)
	case perfbase.Latency:
		return fmt.Sprintf("%8.1f µs p50  (%d requests in %.3f s; %s)", r.Value(), r.Requests, secs, perfLatencyLine(r.Latency))
	}
	return ""
}

func perfLatencyLine(l *perfbase.LatencyStats) string {
	if l == nil {
		return "no latency samples"
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return fmt.Sprintf("latency µs p50 %.0f, p90 %.0f, p99 %.0f, p99.9 %.0f, max %.0f", us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max))
}

// perfReport is the -json output.
type perfReport struct {
	Runs    []*perfbase.Result `json:"runs"`
	Summary []perfSummaryRow   `json:"summary"`
}

// perfSummaryRow is one scenario's median per transport and the ratio.
type perfSummaryRow struct {
	Scenario perfbase.Scenario          `json:"scenario"`
	Unit     string                     `json:"unit"`
	Values   map[string]float64         `json:"values"`            // transport → median Value
	Latency  map[string]*perfLatencyMed `json:"latency,omitempty"` // transport → median latency figures (µs)
	Costs    map[string]perfbase.Costs  `json:"costs"`             // transport → median costs per unit of work
	Ratio    float64                    `json:"ratio,omitempty"`   // quicx against quic-go, above 1 better
	// RatioMin and RatioMax are the lowest and highest ratio of one round's
	// pair of runs: how much the machine drifted during the measurement.
	RatioMin float64 `json:"ratio_min,omitempty"`
	RatioMax float64 `json:"ratio_max,omitempty"`
	// CPURatio is quic-go's CPU time per unit of work over quicx's: the same
	// comparison in CPU efficiency, far less sensitive to a busy machine.
	CPURatio float64 `json:"cpu_ratio,omitempty"`
}

// perfLatencyMed are the medians over the rounds of each latency percentile, in µs.
type perfLatencyMed struct {
	P50, P90, P99, P999, Max float64
}

func perfMedian(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func perfSummarize(runs []*perfbase.Result, scenarios []perfbase.Scenario, transports []string) []perfSummaryRow {
	var rows []perfSummaryRow
	for _, sc := range scenarios {
		row := perfSummaryRow{Scenario: sc, Unit: sc.Unit(), Values: map[string]float64{}, Costs: map[string]perfbase.Costs{}}
		for _, tr := range transports {
			var vals []float64
			var costs [4][]float64
			var lat [5][]float64
			for _, r := range runs {
				if r.Scenario != sc || r.Transport != tr {
					continue
				}
				vals = append(vals, r.Value())
				c := r.PerOp()
				for i, v := range []float64{c.CPU, c.AllocBytes, c.Allocs, c.Goroutines} {
					costs[i] = append(costs[i], v)
				}
				if l := r.Latency; l != nil {
					for i, d := range []time.Duration{l.P50, l.P90, l.P99, l.P999, l.Max} {
						lat[i] = append(lat[i], float64(d)/1e3)
					}
				}
			}
			row.Values[tr] = perfMedian(vals)
			row.Costs[tr] = perfbase.Costs{CPU: perfMedian(costs[0]), AllocBytes: perfMedian(costs[1]), Allocs: perfMedian(costs[2]), Goroutines: perfMedian(costs[3])}
			if len(lat[0]) > 0 {
				if row.Latency == nil {
					row.Latency = map[string]*perfLatencyMed{}
				}
				row.Latency[tr] = &perfLatencyMed{perfMedian(lat[0]), perfMedian(lat[1]), perfMedian(lat[2]), perfMedian(lat[3]), perfMedian(lat[4])}
			}
		}
		if len(transports) == 2 {
			row.Ratio = perfbase.Ratio(sc, row.Values["quicx"], row.Values["quic-go"])
			row.RatioMin, row.RatioMax = perfRoundRatios(runs, sc)
			if qx := row.Costs["quicx"].CPU; qx > 0 {
				row.CPURatio = row.Costs["quic-go"].CPU / qx
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// perfRoundRatios pairs the i-th quicx run of sc with its i-th quic-go run and
// returns the smallest and largest of those ratios.
func perfRoundRatios(runs []*perfbase.Result, sc perfbase.Scenario) (lo, hi float64) {
	var qx, qg []float64
	for _, r := range runs {
		switch {
		case r.Scenario != sc:
		case r.Transport == "quicx":
			qx = append(qx, r.Value())
		case r.Transport == "quic-go":
			qg = append(qg, r.Value())
		}
	}
	for i := range min(len(qx), len(qg)) {
		v := perfbase.Ratio(sc, qx[i], qg[i])
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

func printPerfSummary(w io.Writer, rows []perfSummaryRow, transports []string) {
	fmt.Fprintf(w, "%-9s %-7s", "scenario", "unit")
	for _, tr := range transports {
		fmt.Fprintf(w, " %12s", tr)
	}
	if len(transports) == 2 {
		fmt.Fprintf(w, " %7s  %-15s %s", "ratio", "per-round range", "CPU ratio")
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "%-9s %-7s", r.Scenario, r.Unit)
		for _, tr := range transports {
			fmt.Fprintf(w, " %12s", perfFormatValue(r.Scenario, r.Values[tr]))
		}
		if len(transports) == 2 {
			fmt.Fprintf(w, " %7.3f  %.3f–%.3f     %.3f", r.Ratio, r.RatioMin, r.RatioMax, r.CPURatio)
		}
		fmt.Fprintln(w)
		for _, tr := range transports {
			if l := r.Latency[tr]; l != nil {
				fmt.Fprintf(w, "  %-7s latency µs: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", tr, l.P50, l.P90, l.P99, l.P999, l.Max)
			}
		}
		for _, tr := range transports {
			if c := r.Costs[tr]; c.Allocs > 0 {
				fmt.Fprintf(w, "  %-7s per %s: %.1f µs CPU, %.0f B in %.1f allocs, %.2f goroutines\n", tr, r.Scenario.OpName(), c.CPU, c.AllocBytes, c.Allocs, c.Goroutines)
			}
		}
	}
}

func perfFormatValue(sc perfbase.Scenario, v float64) string {
	switch sc {
	case perfbase.Upload, perfbase.Download:
		return fmt.Sprintf("%.3f", v)
	case perfbase.Latency:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func printPerfMarkdown(w io.Writer, rows []perfSummaryRow, transports []string) {
	fmt.Fprintf(w, "| scenario | unit |")
	for _, tr := range transports {
		fmt.Fprintf(w, " %s |", tr)
	}
	if len(transports) == 2 {
		fmt.Fprintf(w, " ratio | per-round range | CPU ratio |")
	}
	fmt.Fprintf(w, "\n|---|---|%s\n", strings.Repeat("---:|", len(transports)+3*perfBtoi(len(transports) == 2)))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s |", r.Scenario, r.Unit)
		for _, tr := range transports {
			fmt.Fprintf(w, " %s |", perfFormatValue(r.Scenario, r.Values[tr]))
		}
		if len(transports) == 2 {
			fmt.Fprintf(w, " %.3f | %.3f–%.3f | %.3f |", r.Ratio, r.RatioMin, r.RatioMax, r.CPURatio)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | per | transport | CPU µs | heap bytes | allocs | goroutines created |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|")
	for _, r := range rows {
		for _, tr := range transports {
			c := r.Costs[tr]
			fmt.Fprintf(w, "| %s | %s | %s | %.1f | %.0f | %.1f | %.2f |\n", r.Scenario, r.Scenario.OpName(), tr, c.CPU, c.AllocBytes, c.Allocs, c.Goroutines)
		}
	}
	for _, r := range rows {
		for _, tr := range transports {
			if l := r.Latency[tr]; l != nil {
				if r.Scenario == perfbase.RPS || r.Scenario == perfbase.Latency {
					fmt.Fprintf(w, "\n%s %s latency µs: p50 %.0f, p90 %.0f, p99 %.0f, p99.9 %.0f, max %.0f\n", r.Scenario, tr, l.P50, l.P90, l.P99, l.P999, l.Max)
				}
			}
		}
	}
}

func perfBtoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func perfStartCPUProfile(path string) (stop func(), err error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		_ = out.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = out.Close()
	}, nil
}

func perfWriteMemProfile(path string, stderr io.Writer) {
	out, err := os.Create(path)
	if err == nil {
		err = errors.Join(pprof.Lookup("allocs").WriteTo(out, 0), out.Close())
	}
	if err != nil {
		fmt.Fprintf(stderr, "quicx perf: writing the memory profile: %v\n", err)
	}
}
