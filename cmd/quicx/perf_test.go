package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"quicx.dev/internal/perfbase"
)

// TestPerfInProcess runs every scenario on both transports in-process (each
// with its own server) and checks the report, the chart and that nothing is
// left running.
func TestPerfInProcess(t *testing.T) {
	defer goleak.VerifyNone(t)
	chart := filepath.Join(t.TempDir(), "perf.png")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"perf", "-duration", "100ms", "-streams", "4", "-conns", "2",
		"-iosize", "65536", "-json", "-chart", chart}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr.Bytes())
	}
	var rep perfReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout.Bytes())
	}
	if len(rep.Runs) != 2*len(perfbase.Scenarios) || len(rep.Summary) != len(perfbase.Scenarios) {
		t.Fatalf("%d runs, %d summary rows", len(rep.Runs), len(rep.Summary))
	}
	for _, r := range rep.Runs {
		if r.Value() <= 0 {
			t.Errorf("%s %s: %+v", r.Transport, r.Scenario, r)
		}
	}
	for _, row := range rep.Summary {
		if row.Ratio <= 0 {
			t.Errorf("%s: ratio %v", row.Scenario, row.Ratio)
		}
	}
	f, err := os.Open(chart)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 300 {
		t.Errorf("chart is %v", b)
	}
}

// TestPerfServerStops checks that a server runs until its context ends.
func TestPerfServerStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tr := range []string{"quicx", "quic-go"} {
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr bytes.Buffer
		done := make(chan int)
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			done <- run(ctx, []string{"perf", "-server", "-bind", "127.0.0.1", "-port", "0", "-transport", tr}, pw, &stderr)
			pw.Close()
		}()
		buf := make([]byte, 200)
		n, _ := pr.Read(buf)
		line := string(buf[:n])
		if !strings.Contains(line, tr+" server listening on 127.0.0.1:") {
			t.Errorf("%s: first line %q", tr, line)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("%s server: exit %d: %s", tr, code, stderr.Bytes())
		}
		pr.Close()
		_ = stdout
	}
}

func TestParseScenarios(t *testing.T) {
	got, err := perfParseScenarios("rps, latency")
	if err != nil || len(got) != 2 || got[0] != perfbase.RPS || got[1] != perfbase.Latency {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := perfParseScenarios("rps,nope"); err == nil {
		t.Fatal("an unknown scenario was accepted")
	}
	all, _ := perfParseScenarios("all")
	if len(all) != 5 {
		t.Fatalf("all: %v", all)
	}
}

func TestSummaryMedianAndMarkdown(t *testing.T) {
	runs := []*perfbase.Result{
		{Transport: "quicx", Scenario: perfbase.RPS, Requests: 90, Elapsed: 1e9},
		{Transport: "quic-go", Scenario: perfbase.RPS, Requests: 100, Elapsed: 1e9},
		{Transport: "quicx", Scenario: perfbase.RPS, Requests: 95, Elapsed: 1e9},
		{Transport: "quic-go", Scenario: perfbase.RPS, Requests: 100, Elapsed: 1e9},
		{Transport: "quicx", Scenario: perfbase.RPS, Requests: 10, Elapsed: 1e9},
		{Transport: "quic-go", Scenario: perfbase.RPS, Requests: 100, Elapsed: 1e9},
	}
	rows := perfSummarize(runs, []perfbase.Scenario{perfbase.RPS}, []string{"quicx", "quic-go"})
	if len(rows) != 1 || rows[0].Values["quicx"] != 90 || rows[0].Ratio != 0.9 {
		t.Fatalf("rows %+v", rows)
	}
	var b bytes.Buffer
	printPerfMarkdown(&b, rows, []string{"quicx", "quic-go"})
	if !strings.Contains(b.String(), "| rps | req/s | 90 | 100 | 0.900 | 0.100–0.950 | 0.000 |") {
		t.Fatalf("markdown:\n%s", b.String())
	}
}
