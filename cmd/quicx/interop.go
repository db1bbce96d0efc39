package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"quicx.dev/quicx"
)

// The QUIC interop runner's endpoint contract
// (github.com/quic-interop/quic-interop-runner): the runner starts a server
// and a client container, tells each its ROLE and TESTCASE in the
// environment, mounts the certificate at /certs, the files to serve at /www
// and an empty /downloads, passes the client the URLs to fetch in REQUESTS,
// and asks for TLS secrets in SSLKEYLOGFILE and qlog files in QLOGDIR. An
// endpoint that does not support a test case exits with status 127.

const (
	alpnHQ     = "hq-interop" // HTTP/0.9 over QUIC: "GET /path\r\n", then the file, both with FIN
	alpnSiduck = "siduck"     // datagrams: "quack" answered by "quack-ack"

	quicV2 = 0x6b3343cf // QUIC version 2 (RFC 9369)

	// exitUnsupported is the runner's exit status for an unsupported test case.
	exitUnsupported exitCode = 127
)

// interopCase says what quicx does with one TESTCASE value in each role.
type interopCase struct {
	server, client bool   // supported in that role
	note           string // what the case means here, or why it exits 127
}

// interopCases lists every test case name quicx knows. A name that is not
// here, or not supported in the role asked for, exits with status 127. The
// runner sends some of its cases under another name (multiplexing,
// blackhole, transferloss and both rebinding cases arrive as "transfer";
// longrtt as "handshake"; handshakeloss as "multiconnect"; keyupdate as
// "transfer" to the server); the names are accepted as well.
var interopCases = map[string]interopCase{
	"handshake":           {true, true, "one connection, the requested files"},
	"transfer":            {true, true, "one connection, all files concurrently on their own streams"},
	"multiplexing":        {true, true, "as transfer; the server allows 128 concurrent streams and raises the limit as streams close"},
	"retry":               {true, true, "the server makes every client prove its address with a Retry packet"},
	"resumption":          {true, true, "the client fetches the first file, closes, resumes with the server's session ticket and fetches the rest; it fails if the session was not resumed"},
	"multiconnect":        {true, true, "the client uses a new connection for each file"},
	"v2":                  {true, true, "the client starts in QUIC v1 and accepts v2; the server speaks only v2. quic-go has no compatible version negotiation (RFC 9368), so the switch happens by a Version Negotiation packet; the client fails if v2 was not negotiated"},
	"ecn":                 {true, true, "as handshake; quic-go marks packets ECT(0) and reports ECN counts whenever the socket allows it"},
	"rebind-port":         {true, true, "as transfer; the server validates the client's new path"},
	"rebind-addr":         {true, true, "as transfer; the server validates the client's new path"},
	"connectionmigration": {true, true, "the client migrates to a new local UDP port during the transfer (Connection.SetLocalAddr) and fails if it could not; the server accepts the migration but cannot offer a preferred_address (quic-go does not implement it)"},
	"chacha20":            {true, false, "server: crypto/tls accepts a client that offers only ChaCha20-Poly1305. client: exit 127, Go's crypto/tls cannot restrict the TLS 1.3 cipher suites it offers"},
	"keyupdate":           {true, false, "server: served as transfer, quic-go answers the peer's key update. client: exit 127, quic-go gives no way to trigger a key update"},
	"siduck":              {true, true, "quicx's own case: ALPN siduck, the client sends the datagram \"quack\" and expects \"quack-ack\""},
	"zerortt":             {true, true, "the client fetches the first file and keeps the session ticket, then starts the requests for the rest before its second connection starts, so they go out in 0-RTT; it fails if the session was not resumed. The server accepts 0-RTT and logs the streams that arrived in it"},
	"http3":               {false, false, "exit 127: quicx has no HTTP/3 layer"},
	"versionnegotiation":  {false, false, "exit 127: quicx refuses QUIC versions quic-go does not speak, so the client cannot provoke a Version Negotiation packet"},
}

const interopSynopsis = `The QUIC interop runner's endpoint (github.com/quic-interop/quic-interop-runner).
Every flag falls back to the runner's environment variable named in its help.
The server serves the files of -www over hq-interop (HTTP/0.9: the client sends
"GET /path\r\n" on a bidirectional stream with FIN, the server answers with the
file and FIN) and answers siduck datagrams; it runs until interrupted. The
client fetches every URL of -requests into -downloads and exits 0 on success,
1 on failure and 127 for a test case it does not support.`

// interopOptions is the endpoint's configuration, from flags and environment.
type interopOptions struct {
	role      string
	testcase  string
	requests  []string
	certs     string
	www       string
	downloads string
	listen    string
	port      int
	keylog    string
	qlogDir   string
	timeout   time.Duration
}

// init registers the subcommand; it lives here rather than in the commands
// literal of main.go so that this file alone carries it.
func init() {
	commands["interop"] = command{"the QUIC interop runner's endpoint: hq-interop and siduck, server and client", runInterop}
}

// runInterop is the interop subcommand: it validates the role and test case
// (exit status 127 for an unsupported pair) and runs the server until ctx
// ends or the client until its test is done.
func runInterop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("interop", interopSynopsis, stderr)
	var o interopOptions
	var requests string
	fs.StringVar(&o.role, "role", os.Getenv("ROLE"), "`server` or client ($ROLE)")
	fs.StringVar(&o.testcase, "testcase", os.Getenv("TESTCASE"), "the test case `name` ($TESTCASE)")
	fs.StringVar(&requests, "requests", os.Getenv("REQUESTS"), "client: space-separated `URLs` to fetch ($REQUESTS)")
	fs.StringVar(&o.certs, "certs", envOr("QUICX_CERTS", "/certs"), "server: `directory` holding cert.pem and priv.key ($QUICX_CERTS)")
	fs.StringVar(&o.www, "www", envOr("QUICX_WWW", "/www"), "server: `directory` of the files to serve ($QUICX_WWW)")
	fs.StringVar(&o.downloads, "downloads", envOr("QUICX_DOWNLOADS", "/downloads"), "client: `directory` to store the files in ($QUICX_DOWNLOADS)")
	fs.StringVar(&o.listen, "listen", os.Getenv("QUICX_LISTEN"), "server: the IP `address` to listen on; empty means every address ($QUICX_LISTEN)")
	fs.IntVar(&o.port, "port", envInt("QUICX_PORT", 443), "server: the UDP `port`; 0 picks a free one ($QUICX_PORT)")
	fs.StringVar(&o.keylog, "keylog", os.Getenv("SSLKEYLOGFILE"), "`file` to append TLS secrets to, NSS key log format ($SSLKEYLOGFILE)")
	fs.StringVar(&o.qlogDir, "qlogdir", os.Getenv("QLOGDIR"), "`directory` for one qlog file per connection ($QLOGDIR)")
	fs.DurationVar(&o.timeout, "timeout", 0, "client: give up after this long; 0 means never")
	defaultUsage := fs.Usage
	fs.Usage = func() {
		defaultUsage()
		fmt.Fprint(stderr, "\nTest cases (S: server, C: client; - exits 127):\n")
		fmt.Fprint(stderr, interopCaseTable())
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	o.requests = strings.Fields(requests)
	if o.port < 0 || o.port > 65535 {
		fmt.Fprintf(stderr, "-port %d: out of range\n", o.port)
		return errUsage
	}

	tc, known := interopCases[o.testcase]
	var supported bool
	switch o.role {
	case "server":
		supported = tc.server
	case "client":
		supported = tc.client
	default:
		fmt.Fprintf(stderr, "-role (ROLE) must be server or client, not %q\n", o.role)
		return errUsage
	}
	if !supported {
		why := "unknown test case"
		if known {
			why = tc.note
		}
		fmt.Fprintf(stderr, "quicx interop: unsupported test case %q for the %s: %s\n", o.testcase, o.role, why)
		return exitUnsupported
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	log := &interopLog{w: stderr}
	if o.role == "server" {
		return interopServer(ctx, o, stdout, log)
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	return interopClient(ctx, o, log)
}

// interopCaseTable renders interopCases for -help.
func interopCaseTable() string {
	names := make([]string, 0, len(interopCases))
	for n := range interopCases {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	mark := func(ok bool, c string) string {
		if ok {
			return c
		}
		return "-"
	}
	for _, n := range names {
		c := interopCases[n]
		fmt.Fprintf(&b, "  %-20s %s%s  %s\n", n, mark(c.server, "S"), mark(c.client, "C"), c.note)
	}
	return b.String()
}

// envOr is the environment variable name, or def if it is unset or empty.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// envInt is the integer in the environment variable name, or def if it is
// unset or not an integer.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// interopLog writes timestamped progress lines to stderr.
type interopLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *interopLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s quicx interop: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// cipherSuite names the TLS cipher suite of a connected connection.
func cipherSuite(conn *quicx.Connection) string {
	st, err := conn.TLSState()
	if err != nil {
		return "?"
	}
	return tls.CipherSuiteName(st.CipherSuite)
}

// openKeyLog opens the SSLKEYLOGFILE for appending; an empty name gives nil.
func openKeyLog(name string) (*os.File, error) {
	if name == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, fmt.Errorf("key log: %w", err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("key log: %w", err)
	}
	return f, nil
}

// openInteropRegistration opens the registration both roles use, with the
// qlog directory created if needed.
func openInteropRegistration(o interopOptions, retry bool) (*quicx.Registration, error) {
	cfg := quicx.RegistrationConfig{AppName: "quicx-interop-" + o.role, QlogDir: o.qlogDir}
	if o.qlogDir != "" {
		if err := os.MkdirAll(o.qlogDir, 0o755); err != nil {
			return nil, fmt.Errorf("qlog directory: %w", err)
		}
	}
	if retry {
		cfg.StatelessRetry = func(netip.AddrPort) bool { return true }
	}
	reg, err := quicx.OpenRegistration(cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the registration: %w", err)
	}
	return reg, nil
}

// closeRegistration waits a bounded time for the registration's children.
func closeRegistration(reg *quicx.Registration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.CloseContext(ctx); err != nil {
		return fmt.Errorf("closing the registration: %w", err)
	}
	return nil
}
