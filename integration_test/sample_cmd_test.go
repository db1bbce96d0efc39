package integration_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `quicx sample` as quicsample: a server process and client processes over
// loopback; the second client resumes with the ticket the first printed. And
// the in-process demo, the README's main command.
func TestSampleCommand(t *testing.T) {
	bin := buildInterop(t)

	out, err := exec.CommandContext(t.Context(), bin, "sample").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `got back "hello, quicx"`) {
		t.Fatalf("demo: %v\n%s", err, out)
	}

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
	must(t, pc.Close())
	server := exec.Command(bin, "sample", "-server", "-port", port)
	stdout, err := server.StdoutPipe()
	must(t, err)
	must(t, server.Start())
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.Contains(lines.Text(), "listening") {
		_ = server.Process.Kill()
		_ = server.Wait()
		t.Fatalf("server: %q", lines.Text())
	}
	serverOut := make(chan string, 1)
	go func() {
		var b strings.Builder
		for lines.Scan() {
			b.WriteString(lines.Text() + "\n")
		}
		serverOut <- b.String()
	}()

	client := func(extra ...string) string {
		args := append([]string{"sample", "-client", "-target", "127.0.0.1", "-port", port, "-unsecure", "-idle-timeout", "300ms"}, extra...)
		out, err := exec.CommandContext(t.Context(), bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("client %v: %v\n%s", extra, err, out)
		}
		return string(out)
	}
	first := client()
	for _, want := range []string{"connected (resumed=false)", "data received: 100 bytes", "resumption ticket received", "CONNECTION_IDLE"} {
		if !strings.Contains(first, want) {
			t.Errorf("first client output lacks %q:\n%s", want, first)
		}
	}
	ticket := regexp.MustCompile(`(?m)^([0-9a-f]{100,})$`).FindString(first)
	if ticket == "" {
		t.Fatalf("no ticket printed:\n%s", first)
	}
	second := client("-ticket", ticket)
	if !strings.Contains(second, "connected (resumed=true)") || !strings.Contains(second, "data received: 100 bytes") {
		t.Errorf("second client did not resume:\n%s", second)
	}

	must(t, server.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { done <- server.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exit: %v", err)
		}
	case <-time.After(eventTimeout):
		_ = server.Process.Kill()
		<-done
		t.Fatal("server did not stop on SIGINT")
	}
	if got := <-serverOut; strings.Count(got, "[conn] connected") != 2 || !strings.Contains(got, "resumed=true") {
		t.Errorf("server output:\n%s", got)
	}
}
