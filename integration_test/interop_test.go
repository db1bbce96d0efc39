package integration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"quicx.dev/quicx"
)

// interopEnv is what every `quicx interop` process of TestInterop shares: the
// binary, a self-signed certificate and the files to serve.
type interopEnv struct {
	bin   string
	certs string
	www   string
}

// interopVars are the interop runner's environment variables; the processes
// get them only from each test, never from the test's own environment.
var interopVars = []string{"ROLE", "TESTCASE", "REQUESTS", "SSLKEYLOGFILE", "QLOGDIR", "QUICX_CERTS", "QUICX_WWW", "QUICX_DOWNLOADS", "QUICX_LISTEN", "QUICX_PORT"}

// processEnv is os.Environ without the interop variables, plus extra. A race
// build would pause a second at exit unless GORACE says otherwise.
func processEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(interopVars, name) {
			env = append(env, kv)
		}
	}
	if _, ok := os.LookupEnv("GORACE"); !ok {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return append(env, extra...)
}

// TestInterop runs `quicx interop` servers and clients against each other
// over loopback, one pair per test case, the way the interop runner does.
func TestInterop(t *testing.T) {
	env := interopEnv{certs: t.TempDir(), www: t.TempDir()}
	must(t, quicx.WriteSelfSignedFiles(filepath.Join(env.certs, "cert.pem"), filepath.Join(env.certs, "priv.key"), "localhost", "127.0.0.1"))
	env.bin = buildInterop(t)
	rng := rand.New(rand.NewPCG(1, 2))
	writeFile := func(name string, size int) string {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		must(t, os.WriteFile(filepath.Join(env.www, name), b, 0o644))
		return name
	}
	small := writeFile("small", 1<<10)
	medium := writeFile("medium", 100<<10)
	big := writeFile("big", 3<<20)
	empty := writeFile("empty", 0)
	var many []string
	for i := range 200 {
		many = append(many, writeFile(fmt.Sprintf("m%03d", i), 32))
	}

	t.Run("unsupported", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct{ role, testcase string }{
			{"client", "chacha20"}, {"client", "keyupdate"},
			{"server", "http3"}, {"client", "versionnegotiation"}, {"server", "no-such-case"},
		} {
			cmd := exec.CommandContext(t.Context(), env.bin, "interop", "-role", c.role, "-testcase", c.testcase)
			cmd.Env = processEnv()
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 127 {
				t.Errorf("%s %s: %v, want exit status 127\n%s", c.role, c.testcase, err, out)
			}
		}
	})

	// The handshake case takes everything from the environment, as in the
	// runner's containers, and writes key and qlog files.
	t.Run("handshake", func(t *testing.T) {
		t.Parallel()
		logs := t.TempDir()
		srv := env.startServer(t, "handshake", "SSLKEYLOGFILE="+filepath.Join(logs, "server.keys"), "QLOGDIR="+filepath.Join(logs, "qlog"))
		dl := t.TempDir()
		env.runClient(t, nil, processEnv("ROLE=client", "TESTCASE=handshake", "QUICX_DOWNLOADS="+dl,
			"REQUESTS="+srv.urls(small, medium), "SSLKEYLOGFILE="+filepath.Join(logs, "client.keys")))
		env.checkFiles(t, dl, small, medium)
		srv.stop(t)
		for _, f := range []string{"server.keys", "client.keys"} {
			b, err := os.ReadFile(filepath.Join(logs, f))
			if err != nil || !bytes.Contains(b, []byte("CLIENT_TRAFFIC_SECRET_0 ")) {
				t.Errorf("%s: no TLS secrets (%v)", f, err)
			}
		}
		if q, _ := filepath.Glob(filepath.Join(logs, "qlog", "*_server.sqlog")); len(q) != 1 {
			t.Errorf("server qlog files: %v", q)
		}
	})

	t.Run("transfer", func(t *testing.T) {
		env.exchange(t, "transfer", "transfer", []string{small, big, medium, empty}, nil, nil)
	})

	// 200 requests through a server that allows 128 streams at a time: the
	// client's stream starts wait for the credit the server gives back.
	t.Run("multiplexing", func(t *testing.T) {
		env.exchange(t, "transfer", "multiplexing", many, nil, nil)
	})

	t.Run("multiconnect", func(t *testing.T) {
		t.Parallel()
		srv := env.startServer(t, "multiconnect")
		dl := t.TempDir()
		stderr := env.client(t, "multiconnect", dl, srv.urls(small, medium, small))
		env.checkFiles(t, dl, small, medium)
		if n := strings.Count(stderr, "client: connected"); n != 3 {
			t.Errorf("%d connections, want 3\n%s", n, stderr)
		}
		srv.stop(t)
	})

	// The client's qlog shows the Retry packet it received.
	t.Run("retry", func(t *testing.T) {
		t.Parallel()
		srv := env.startServer(t, "retry")
		dl, qlog := t.TempDir(), t.TempDir()
		env.client(t, "retry", dl, srv.urls(small), "-qlogdir", qlog)
		env.checkFiles(t, dl, small)
		srv.stop(t)
		files, _ := filepath.Glob(filepath.Join(qlog, "*_client.sqlog"))
		if len(files) != 1 {
			t.Fatalf("client qlog files: %v", files)
		}
		b, err := os.ReadFile(files[0])
		must(t, err)
		if !bytes.Contains(b, []byte(`"packet_type":"retry"`)) {
			t.Errorf("the client's qlog shows no Retry packet")
		}
	})

	// The client fails unless its second connection resumed the session.
	t.Run("resumption", func(t *testing.T) {
		env.exchange(t, "resumption", "resumption", []string{small, medium, big},
			[]string{"resumed=false", "resumed=true"}, []string{"resumed=true"})
	})

	// The second connection's requests go out in 0-RTT: the server counts
	// the streams that arrived in it.
	t.Run("zerortt", func(t *testing.T) {
		env.exchange(t, "zerortt", "zerortt", []string{small, medium, big},
			[]string{"resumed=true"}, []string{"done, 2 requests, 2 on streams opened in 0-RTT"})
	})

	t.Run("v2", func(t *testing.T) {
		env.exchange(t, "v2", "v2", []string{small}, []string{"QUIC version 0x6b3343cf"}, nil)
	})

	// The client moves to a new local port during a 3 MiB transfer; the
	// server sees the client's address change.
	t.Run("connectionmigration", func(t *testing.T) {
		env.exchange(t, "connectionmigration", "connectionmigration", []string{big},
			[]string{"client: migrated to 127.0.0.1:"}, []string{"moved to 127.0.0.1:"})
	})

	t.Run("siduck", func(t *testing.T) {
		t.Parallel()
		srv := env.startServer(t, "siduck")
		stderr := env.client(t, "siduck", t.TempDir(), "https://"+srv.addr+"/")
		if !strings.Contains(stderr, "quack-ack received") {
			t.Errorf("no quack-ack:\n%s", stderr)
		}
		srv.stop(t)
	})

	// Cases served like transfer or handshake; chacha20 and keyupdate are
	// server-only.
	t.Run("server-cases", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct{ server, client string }{
			{"chacha20", "transfer"}, {"keyupdate", "transfer"}, {"ecn", "ecn"}, {"rebind-port", "rebind-port"}, {"rebind-addr", "rebind-addr"},
		} {
			srv := env.startServer(t, c.server)
			dl := t.TempDir()
			env.client(t, c.client, dl, srv.urls(medium, small))
			env.checkFiles(t, dl, medium, small)
			srv.stop(t)
		}
	})

	// A missing file fails the client with exit status 1.
	t.Run("not-found", func(t *testing.T) {
		t.Parallel()
		srv := env.startServer(t, "handshake")
		cmd := exec.CommandContext(t.Context(), env.bin, "interop", "-role", "client", "-testcase", "handshake",
			"-downloads", t.TempDir(), "-requests", srv.urls(small, "missing"))
		cmd.Env = processEnv()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !bytes.Contains(out, []byte("/missing")) {
			t.Errorf("%v, want exit status 1 naming /missing\n%s", err, out)
		}
		srv.stop(t)
	})
}

// exchange runs, in parallel with the other cases, a server for serverCase
// and a client for clientCase fetching files, checks the files, and checks
// that the client's and then the server's log contain every line fragment
// given.
func (e interopEnv) exchange(t *testing.T, serverCase, clientCase string, files, clientWants, serverWants []string) {
	t.Helper()
	t.Parallel()
	srv := e.startServer(t, serverCase)
	dl := t.TempDir()
	stderr := e.client(t, clientCase, dl, srv.urls(files...))
	e.checkFiles(t, dl, files...)
	for _, w := range clientWants {
		if !strings.Contains(stderr, w) {
			t.Errorf("the client's log has no %q:\n%s", w, stderr)
		}
	}
	srv.stop(t)
	for _, w := range serverWants {
		if !strings.Contains(srv.log(), w) {
			t.Errorf("the server's log has no %q:\n%s", w, srv.log())
		}
	}
}

// buildInterop builds cmd/quicx for the test (see perfBuild).
func buildInterop(t *testing.T) string {
	t.Helper()
	return perfBuild(t, t.TempDir())
}

// interopServerProc is a running `quicx interop -role server` process.
type interopServerProc struct {
	cmd    *exec.Cmd
	addr   string        // 127.0.0.1:port
	stdout interopBuffer // its first line gives the address
	stderr interopBuffer
	done   chan error // Wait's result
	exited bool       // done was received
}

// startServer starts a server for testcase on a free loopback port and waits
// for its "listening" line. Extra environment entries are added.
func (e interopEnv) startServer(t *testing.T, testcase string, env ...string) *interopServerProc {
	t.Helper()
	s := &interopServerProc{done: make(chan error, 1)}
	s.cmd = exec.Command(e.bin, "interop")
	s.cmd.Env = processEnv(append([]string{"ROLE=server", "TESTCASE=" + testcase, "QUICX_CERTS=" + e.certs, "QUICX_WWW=" + e.www,
		"QUICX_LISTEN=127.0.0.1", "QUICX_PORT=0"}, env...)...)
	s.cmd.Stderr = &s.stderr
	s.cmd.Stdout = &s.stdout
	s.stdout.line = make(chan struct{})
	must(t, s.cmd.Start())
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if !s.exited {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case <-s.stdout.line:
		line := s.stdout.String()
		_, addr, ok := strings.Cut(strings.TrimSpace(line), "server listening on ")
		if !ok || !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("server: first line %q\nstderr:\n%s", line, s.log())
		}
		s.addr = addr
	case err := <-s.done:
		s.done <- err
		t.Fatalf("server exited: %v\nstderr:\n%s", err, s.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("server: no listening line\nstderr:\n%s", s.log())
	}
	return s
}

// urls makes the REQUESTS value for files on this server.
func (s *interopServerProc) urls(files ...string) string {
	var b strings.Builder
	for i, f := range files {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "https://%s/%s", s.addr, f)
	}
	return b.String()
}

func (s *interopServerProc) log() string { return s.stderr.String() }

// stop interrupts the server and checks that it exits with status 0.
func (s *interopServerProc) stop(t *testing.T) {
	t.Helper()
	must(t, s.cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-s.done:
		s.exited = true
		if err != nil {
			t.Errorf("server exit: %v\nstderr:\n%s", err, s.log())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("server did not exit\nstderr:\n%s", s.log())
	}
}

// client runs a client for testcase with flags and returns its stderr; it
// fails the test unless the client exits with status 0.
func (e interopEnv) client(t *testing.T, testcase, downloads, requests string, flags ...string) string {
	t.Helper()
	args := append([]string{"-role", "client", "-testcase", testcase, "-downloads", downloads, "-requests", requests, "-timeout", "30s"}, flags...)
	return e.runClient(t, args, processEnv())
}

// runClient runs `quicx interop` with args and env, and returns its output;
// it fails the test unless the client exits with status 0.
func (e interopEnv) runClient(t *testing.T, args, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, append([]string{"interop"}, args...)...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client: %v\n%s", err, stderr.Bytes())
	}
	return stderr.String()
}

// checkFiles compares downloaded files with the served ones, byte for byte.
func (e interopEnv) checkFiles(t *testing.T, downloads string, names ...string) {
	t.Helper()
	for _, n := range names {
		want, err := os.ReadFile(filepath.Join(e.www, n))
		must(t, err)
		got, err := os.ReadFile(filepath.Join(downloads, n))
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes, want %d, contents differ", n, len(got), len(want))
		}
	}
}

// interopBuffer is a bytes.Buffer safe for a process writing while a test
// reads; if line is set, it is closed once a complete line has been written.
type interopBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	line   chan struct{} // set before the process starts
	closed bool
}

func (b *interopBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.b.Write(p)
	if b.line != nil && !b.closed && bytes.IndexByte(b.b.Bytes(), '\n') >= 0 {
		close(b.line)
		b.closed = true
	}
	return n, err
}

func (b *interopBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
