package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// perfReport is the part of `quicx perf -json` the tests read.
type perfReport struct {
	Runs []struct {
		Transport  string `json:"transport"`
		Scenario   string `json:"scenario"`
		ElapsedNS  int64  `json:"elapsed_ns"`
		Bytes      uint64 `json:"bytes"`
		Requests   uint64 `json:"requests"`
		Handshakes uint64 `json:"handshakes"`
		Latency    *struct {
			Count int   `json:"count"`
			P50   int64 `json:"p50_ns"`
			Max   int64 `json:"max_ns"`
		} `json:"latency"`
	} `json:"runs"`
	Summary []struct {
		Scenario string             `json:"scenario"`
		Values   map[string]float64 `json:"values"`
		Ratio    float64            `json:"ratio"`
	} `json:"summary"`
}

// perfBuild builds cmd/quicx into dir (with the race detector when the
// tests run with it) and returns the binary's path.
func perfBuild(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "quicx")
	args := []string{"build", "-o", bin}
	if perfRaceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "quicx.dev/cmd/quicx")
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// perfExec runs the binary to completion and returns its stdout.
func perfExec(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("quicx %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// perfServerProc is a `quicx perf -server` process.
type perfServerProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr bytes.Buffer
}

// startPerfServerProc starts a server of transport on a free loopback port and
// waits for the line that gives its address.
func startPerfServerProc(t *testing.T, bin, transport string) *perfServerProc {
	t.Helper()
	s := &perfServerProc{}
	s.cmd = exec.Command(bin, "perf", "-server", "-bind", "127.0.0.1", "-port", "0", "-transport", transport)
	s.cmd.Stderr = &s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		t.Fatalf("%s server: no address line: %v\nstderr:\n%s", transport, err, s.stderr.Bytes())
	}
	i := strings.LastIndex(line, " ")
	s.addr = strings.TrimSpace(line[i+1:])
	if !strings.Contains(line, "listening on") || !strings.HasPrefix(s.addr, "127.0.0.1:") {
		t.Fatalf("%s server: unexpected first line %q", transport, line)
	}
	return s
}

// stop interrupts the server and checks that it exits cleanly.
func (s *perfServerProc) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exit: %v\nstderr:\n%s", err, s.stderr.Bytes())
		}
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
		t.Errorf("server did not exit after SIGINT\nstderr:\n%s", s.stderr.Bytes())
	}
}

func (s *perfServerProc) port() string { return s.addr[strings.LastIndex(s.addr, ":")+1:] }

// perfCheckRuns checks that every scenario of a report moved data.
func perfCheckRuns(t *testing.T, rep *perfReport, transports []string, scenarios []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range rep.Runs {
		key := r.Transport + "/" + r.Scenario
		seen[key] = true
		if r.ElapsedNS <= 0 {
			t.Errorf("%s: elapsed %d", key, r.ElapsedNS)
		}
		switch r.Scenario {
		case "upload", "download":
			if r.Bytes == 0 {
				t.Errorf("%s: no bytes", key)
			}
		case "rps", "latency":
			if r.Requests == 0 || r.Latency == nil || r.Latency.Count != int(r.Requests) || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P50 {
				t.Errorf("%s: requests %d, latency %+v", key, r.Requests, r.Latency)
			}
		case "hps":
			if r.Handshakes == 0 {
				t.Errorf("%s: no handshakes", key)
			}
		}
	}
	for _, tr := range transports {
		for _, sc := range scenarios {
			if !seen[tr+"/"+sc] {
				t.Errorf("no %s run of %s", tr, sc)
			}
		}
	}
}

func perfDecodeReport(t *testing.T, out []byte) *perfReport {
	t.Helper()
	var rep perfReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("decoding the JSON report: %v\n%s", err, out)
	}
	return &rep
}

// TestPerf runs `quicx perf` over loopback: every server transport against
// every client transport in separate processes (one wire protocol), the
// in-process comparison mode with its chart, fixed-size transfers, and the
// command-line handling.
func TestPerf(t *testing.T) {
	bin := perfBuild(t, t.TempDir())
	all := []string{"upload", "download", "rps", "hps", "latency"}

	t.Run("cross", func(t *testing.T) {
		for _, server := range []string{"quicx", "quic-go"} {
			for _, client := range []string{"quicx", "quic-go"} {
				t.Run(fmt.Sprintf("%s-server/%s-client", server, client), func(t *testing.T) {
					t.Parallel()
					srv := startPerfServerProc(t, bin, server)
					defer srv.stop(t)
					out := perfExec(t, bin, "perf", "-target", "127.0.0.1", "-port", srv.port(), "-transport", client,
						"-scenario", "all", "-duration", "100ms", "-streams", "4", "-conns", "2", "-iosize", "65536", "-json")
					perfCheckRuns(t, perfDecodeReport(t, out), []string{client}, all)
				})
			}
		}
	})

	t.Run("in-process-both", func(t *testing.T) {
		chart := filepath.Join(t.TempDir(), "perf.png")
		out := perfExec(t, bin, "perf", "-scenario", "rps,latency", "-duration", "100ms", "-streams", "8", "-json", "-chart", chart)
		rep := perfDecodeReport(t, out)
		perfCheckRuns(t, rep, []string{"quicx", "quic-go"}, []string{"rps", "latency"})
		if len(rep.Summary) != 2 {
			t.Fatalf("summary has %d rows, want 2", len(rep.Summary))
		}
		for _, row := range rep.Summary {
			if row.Ratio <= 0 || row.Values["quicx"] <= 0 || row.Values["quic-go"] <= 0 {
				t.Errorf("summary row %+v", row)
			}
		}
		f, err := os.Open(chart)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := png.Decode(f); err != nil {
			t.Errorf("chart: %v", err)
		}
	})

	t.Run("fixed-size", func(t *testing.T) {
		out := perfExec(t, bin, "perf", "-scenario", "upload,download", "-bytes", "300000", "-streams", "3", "-iosize", "100000", "-json")
		rep := perfDecodeReport(t, out)
		perfCheckRuns(t, rep, []string{"quicx", "quic-go"}, []string{"upload", "download"})
		for _, r := range rep.Runs {
			if r.Bytes != 3*300000 {
				t.Errorf("%s %s moved %d bytes, want %d", r.Transport, r.Scenario, r.Bytes, 3*300000)
			}
		}
	})

	t.Run("text-output", func(t *testing.T) {
		out := string(perfExec(t, bin, "perf", "-scenario", "latency", "-duration", "50ms", "-markdown"))
		for _, want := range []string{"latency  quicx   round 1", "latency  quic-go round 1", "ratio", "| latency | p50 µs |"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("usage", func(t *testing.T) {
		cmd := exec.Command(bin, "perf", "-help")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage: quicx perf") || !strings.Contains(string(out), "-scenario") {
			t.Errorf("perf -help: %v\n%s", err, out)
		}
		for _, args := range [][]string{
			{"perf", "-scenario", "nope"},
			{"perf", "-transport", "tcp"},
			{"perf", "-server", "-target", "127.0.0.1"},
			{"perf", "-bytes", "3"},
		} {
			err := exec.Command(bin, args...).Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("quicx %s: %v, want exit status 2", strings.Join(args, " "), err)
			}
		}
	})
}
