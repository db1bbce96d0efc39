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
	fs.Uint64Var(&f.bytes, "bytes", 0, "upload/download: bytes per stream (header included) instead of a timed run")
	fs.Uint64Var(&f.request, "request", 512, "rps/latency: bytes sent per request, the 8-byte header included")
	fs.Uint64Var(&f.response, "response", 4000, "rps/latency: bytes received per request")
	fs.IntVar(&f.streams, "streams", 0, "parallel streams per connection (default: 100 for rps, else 1)")
	fs.IntVar(&f.conns, "conns", 0, "connections; for hps the parallel dialers (default: 16 per CPU for hps, else 1)")
	fs.IntVar(&f.ioSize, "iosize", perfbase.DefaultIO, "bytes per send and per receive buffer")
	fs.IntVar(&f.rounds, "rounds", 1, "runs per scenario and transport (alternating); the median is reported")
	fs.StringVar(&f.exec, "exec", "auto", "quicx execution profile: lowlat, maxtput, or auto (secnetperf's: maxtput for upload, download and hps)")
	fs.BoolVar(&f.events, "events", false, "quicx Settings.TransportEvents (the qlog recorder; the perf protocol needs none of its events)")
	fs.StringVar(&f.sni, "sni", "", "client: the TLS server name (default: -target)")
	fs.StringVar(&f.certFile, "cert", "", "-server: certificate PEM file (default: a fresh self-signed certificate)")
	fs.StringVar(&f.keyFile, "key", "", "-server: private key PEM file")
	fs.BoolVar(&f.jsonOut, "json", false, "print the results as JSON instead of text")
	fs.BoolVar(&f.markdown, "markdown", false, "also print the summary as a Markdown table")
	fs.StringVar(&f.chart, "chart", "", "write a PNG bar chart of the summary to this file")
	fs.BoolVar(&f.progress, "progress", true, "show a progress line on stderr during runs longer than a second")
	fs.StringVar(&f.cpuProf, "cpuprofile", "", "write a CPU profile of the whole command to this file")
	fs.StringVar(&f.memProf, "memprofile", "", "write an allocation profile to this file at the end")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.cpuProf != "" {
		stop, err := startCPUProfile(f.cpuProf)
		if err != nil {
			return err
		}
		defer stop()
	}
	if f.memProf != "" {
		defer writeMemProfile(f.memProf, stderr)
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
	transports, err := parseTransports(f.transport)
	if err != nil {
		return bad("%v", err)
	}
	scenarios, err := parseScenarios(f.scenario)
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
	if _, err := execProfile(f.exec, perfbase.RPS); err != nil {
		return bad("%v", err)
	}
	return perfClients(ctx, &f, scenarios, transports, stdout, stderr)
}

func parseTransports(s string) ([]string, error) {
	switch s {
	case "quicx", "quic-go":
		return []string{s}, nil
	case "both":
		return []string{"quicx", "quic-go"}, nil
	}
	return nil, fmt.Errorf("unknown -transport %q (quicx, quic-go or both)", s)
}

func parseScenarios(s string) ([]perfbase.Scenario, error) {
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

// execProfile picks the quicx execution profile for a scenario.
func execProfile(exec string, sc perfbase.Scenario) (quicx.ExecutionProfile, error) {
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

func startServer(transport string, addr netip.AddrPort, cert *tls.Certificate, ioSize int, opt quicxOptions) (perfServer, error) {
	if transport == "quic-go" {
		return perfbase.Listen(addr, *cert, perfbase.ServerSettings(), ioSize)
	}
	return listenQuicx(addr, cert, ioSize, opt)
}

func perfServe(ctx context.Context, f *perfFlags, stdout io.Writer) error {
	cert, err := serverCertificate(f.certFile, f.keyFile)
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
	profile, err := execProfile(exec, "")
	if err != nil {
		return err
	}
	srv, err := startServer(f.transport, netip.AddrPortFrom(ip, uint16(f.port)), cert, f.ioSize, quicxOptions{profile: profile, events: f.events})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "quicx perf: %s server listening on %s\n", f.transport, srv.Addr())
	<-ctx.Done()
	return srv.Close()
}

func serverCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" && keyFile == "" {
		return quicx.SelfSignedCertificate()
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the certificate: %w", err)
	}
	return &cert, nil
}

// clientConfig builds one run's configuration from the flags.
func clientConfig(f *perfFlags, sc perfbase.Scenario, host string, port uint16) *perfbase.ClientConfig {
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
		ip, err := resolveHost(ctx, f.target)
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
					fmt.Fprintf(stdout, "%-8s %-7s round %d  %s\n", sc, tr, round+1, describe(res))
				}
			}
		}
	}
	sum := summarize(runs, scenarios, transports)
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(perfReport{Runs: runs, Summary: sum}); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout)
		printSummary(stdout, sum, transports)
	}
	if f.markdown {
		fmt.Fprintln(stdout)
		printMarkdown(stdout, sum, transports)
	}
	if f.chart != "" {
		if err := writeChart(f.chart, sum, transports); err != nil {
			return fmt.Errorf("writing the chart: %w", err)
		}
	}
	return nil
}

func resolveHost(ctx context.Context, host string) (netip.Addr, error) {
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
	profile, err := execProfile(f.exec, sc)
	if err != nil {
		return nil, err
	}
	opt := quicxOptions{profile: profile, events: f.events}
	if cert != nil {
		srv, err := startServer(transport, netip.MustParseAddrPort("127.0.0.1:0"), cert, f.ioSize, opt)
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		port = srv.Addr().Port()
	}
	cfg := clientConfig(f, sc, host, port)
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
	stop := func() {}
	if f.progress && (cfg.Bytes == 0 && cfg.Duration > time.Second) {
		stop = showProgress(stderr, fmt.Sprintf("%s %s", transport, sc), cfg)
	}
	res, err := perfbase.Run(ctx, transport, client, cfg)
	stop()
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

// describe renders one run's result.
func describe(r *perfbase.Result) string {
	secs := r.Elapsed.Seconds()
	switch r.Scenario {
	case perfbase.Upload, perfbase.Download:
		return fmt.Sprintf("%8.3f Gbit/s  (%d bytes in %.3f s)", r.Value(), r.Bytes, secs)
	case perfbase.RPS:
		return fmt.Sprintf("%8.0f req/s   (%d requests in %.3f s; %s)", r.Value(), r.Requests, secs, latencyLine(r.Latency))
	case perfbase.HPS:
		return fmt.Sprintf("%8.0f hs/s    (%d handshakes in %.3f s)", r.Value(), r.Handshakes, secs)
	case perfbase.Latency:
		return fmt.Sprintf("%8.1f µs p50  (%d requests in %.3f s; %s)", r.Value(), r.Requests, secs, latencyLine(r.Latency))
	}
	return ""
}

func latencyLine(l *perfbase.LatencyStats) string {
	if l == nil {
		return "no latency samples"
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return fmt.Sprintf("latency µs p50 %.0f, p90 %.0f, p99 %.0f, p99.9 %.0f, max %.0f", us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max))
}

// perfReport is the -json output.
type perfReport struct {
	Runs    []*perfbase.Result `json:"runs"`
	Summary []summaryRow       `json:"summary"`
}

// summaryRow is one scenario's median per transport and the ratio.
type summaryRow struct {
	Scenario perfbase.Scenario      `json:"scenario"`
	Unit     string                 `json:"unit"`
	Values   map[string]float64     `json:"values"`            // transport → median Value
	Latency  map[string]*latencyMed `json:"latency,omitempty"` // transport → median latency figures (µs)
	Ratio    float64                `json:"ratio,omitempty"`   // quicx against quic-go, above 1 better
}

// latencyMed are the medians over the rounds of each latency percentile, in µs.
type latencyMed struct {
	P50, P90, P99, P999, Max float64
}

func median(v []float64) float64 {
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

func summarize(runs []*perfbase.Result, scenarios []perfbase.Scenario, transports []string) []summaryRow {
	var rows []summaryRow
	for _, sc := range scenarios {
		row := summaryRow{Scenario: sc, Unit: sc.Unit(), Values: map[string]float64{}}
		for _, tr := range transports {
			var vals []float64
			var lat [5][]float64
			for _, r := range runs {
				if r.Scenario != sc || r.Transport != tr {
					continue
				}
				vals = append(vals, r.Value())
				if l := r.Latency; l != nil {
					for i, d := range []time.Duration{l.P50, l.P90, l.P99, l.P999, l.Max} {
						lat[i] = append(lat[i], float64(d)/1e3)
					}
				}
			}
			row.Values[tr] = median(vals)
			if len(lat[0]) > 0 {
				if row.Latency == nil {
					row.Latency = map[string]*latencyMed{}
				}
				row.Latency[tr] = &latencyMed{median(lat[0]), median(lat[1]), median(lat[2]), median(lat[3]), median(lat[4])}
			}
		}
		if len(transports) == 2 {
			row.Ratio = perfbase.Ratio(sc, row.Values["quicx"], row.Values["quic-go"])
		}
		rows = append(rows, row)
	}
	return rows
}

func printSummary(w io.Writer, rows []summaryRow, transports []string) {
	fmt.Fprintf(w, "%-9s %-7s", "scenario", "unit")
	for _, tr := range transports {
		fmt.Fprintf(w, " %12s", tr)
	}
	if len(transports) == 2 {
		fmt.Fprintf(w, " %7s", "ratio")
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "%-9s %-7s", r.Scenario, r.Unit)
		for _, tr := range transports {
			fmt.Fprintf(w, " %12s", formatValue(r.Scenario, r.Values[tr]))
		}
		if len(transports) == 2 {
			fmt.Fprintf(w, " %7.3f", r.Ratio)
		}
		fmt.Fprintln(w)
		for _, tr := range transports {
			if l := r.Latency[tr]; l != nil {
				fmt.Fprintf(w, "  %-7s latency µs: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", tr, l.P50, l.P90, l.P99, l.P999, l.Max)
			}
		}
	}
}

func formatValue(sc perfbase.Scenario, v float64) string {
	switch sc {
	case perfbase.Upload, perfbase.Download:
		return fmt.Sprintf("%.3f", v)
	case perfbase.Latency:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func printMarkdown(w io.Writer, rows []summaryRow, transports []string) {
	fmt.Fprintf(w, "| scenario | unit |")
	for _, tr := range transports {
		fmt.Fprintf(w, " %s |", tr)
	}
	if len(transports) == 2 {
		fmt.Fprintf(w, " ratio |")
	}
	fmt.Fprintf(w, "\n|---|---|%s\n", strings.Repeat("---:|", len(transports)+btoi(len(transports) == 2)))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s |", r.Scenario, r.Unit)
		for _, tr := range transports {
			fmt.Fprintf(w, " %s |", formatValue(r.Scenario, r.Values[tr]))
		}
		if len(transports) == 2 {
			fmt.Fprintf(w, " %.3f |", r.Ratio)
		}
		fmt.Fprintln(w)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func startCPUProfile(path string) (stop func(), err error) {
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

func writeMemProfile(path string, stderr io.Writer) {
	out, err := os.Create(path)
	if err == nil {
		err = errors.Join(pprof.Lookup("allocs").WriteTo(out, 0), out.Close())
	}
	if err != nil {
		fmt.Fprintf(stderr, "quicx perf: writing the memory profile: %v\n", err)
	}
}
