package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/e2bserver"
	"github.com/pettyvm/petty/internal/privdir"
	"github.com/pettyvm/petty/sandbox"
)

// tokenEnv names the environment variable that holds petty serve's token.
const tokenEnv = "PETTY_TOKEN"

// maxMCPBody bounds an HTTP request body (a base64 write_file of
// mcpserver.MaxWriteFile bytes fits).
const maxMCPBody = 16 << 20

// errNoToken is returned when petty serve would listen beyond loopback with
// a generated token.
var errNoToken = errors.New("refusing to listen beyond loopback without a token")

func (a *app) serveCommand() *cobra.Command {
	var (
		f              sandboxFlags
		listen         string
		tokenFile      string
		sessionTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve sandboxes over MCP on HTTP (streamable HTTP at /mcp)",
		Long: `petty serve serves sandboxes over MCP's streamable HTTP transport at /mcp, with
/healthz and Prometheus metrics at /metrics, and E2B's API on the same listener
(E2B_API_URL=E2B_SANDBOX_URL=http://ADDR, E2B_API_KEY=the token). Every request
needs the bearer token from $PETTY_TOKEN or --token-file (E2B's calls carry it as
X-API-Key, or a sandbox's access token); with neither, petty generates one
(e2b_ and 40 hex digits) into a 0600 file and logs its path (and then listens on
loopback only). --listen unix://PATH listens on a 0600 unix socket. A sandbox
created over MCP lives as long as the MCP session that created it: when the
client ends the session, or it is idle for --session-timeout, its sandboxes are
destroyed. --pool N keeps N sandboxes ready (their agent answering) for
create_sandbox to hand out at once, refilled in the background; they count
against --memory-share. Sandboxes start from a template snapshot of the image
where the VMM can (--snapshots). SIGTERM stops accepting, destroys every
sandbox and pooled VM and exits 0.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return a.serve(&f, listen, tokenFile, sessionTimeout) },
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7777", "HOST:PORT, or unix://PATH")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the bearer token (default $"+tokenEnv+", else a generated one)")
	cmd.Flags().DurationVar(&sessionTimeout, "session-timeout", time.Hour, "an MCP session idle this long ends, and its sandboxes are destroyed")
	return cmd
}

// serveToken returns the bearer token, whether the user gave it, and the
// file petty generated it into ("" when given).
func (a *app) serveToken(tokenFile string) (string, bool, string, error) {
	if t := strings.TrimSpace(os.Getenv(tokenEnv)); t != "" {
		return t, true, "", nil
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", false, "", fmt.Errorf("reading the token: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", false, "", usagef("--token-file %s is empty", tokenFile)
		}
		return t, true, "", nil
	}
	root := a.runRoot()
	if err := privdir.Ensure(root); err != nil {
		return "", false, "", fmt.Errorf("the directory of the generated token: %w", err)
	}
	// "e2b_" + 40 hex digits: also a key E2B's SDKs accept as E2B_API_KEY
	// (Python's checks ^e2b_[0-9a-f]+$).
	var b [20]byte
	_, _ = rand.Read(b[:])
	t := "e2b_" + hex.EncodeToString(b[:])
	path := filepath.Join(root, "serve-token")
	_ = os.Remove(path)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", false, "", fmt.Errorf("writing the generated token: %w", err)
	}
	fmt.Fprintf(a.stderr, "petty serve: generated a bearer token in %s\n", path)
	a.logger().Info("generated a bearer token", "path", path)
	return t, false, path, nil
}

// serveListen listens on addr: HOST:PORT, or unix://PATH (a 0600 socket).
// It refuses an address beyond loopback unless the token was given.
func serveListen(addr string, tokenGiven bool) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if path == "" {
			return nil, usagef("--listen unix://PATH: empty path")
		}
		if fi, err := os.Lstat(path); err == nil {
			if fi.Mode().Type() != fs.ModeSocket {
				return nil, fmt.Errorf("%s exists and is not a socket", path)
			}
			if c, err := net.Dial("unix", path); err == nil {
				c.Close()
				return nil, fmt.Errorf("%s: another server listens there", path)
			}
			_ = os.Remove(path) // a dead server's socket
		}
		old := syscall.Umask(0o177) // the socket is created 0600
		l, err := net.Listen("unix", path)
		syscall.Umask(old)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usagef("--listen %q: want HOST:PORT or unix://PATH", addr)
	}
	if !tokenGiven && !isLoopback(host) {
		return nil, fmt.Errorf("%w: --listen %s; set $%s or --token-file", errNoToken, addr, tokenEnv)
	}
	return net.Listen("tcp", addr)
}

// isLoopback reports whether host names only loopback addresses.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireToken answers 401 to a request without the bearer token.
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="petty"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withE2B routes the requests of E2B's API (which authenticate with their
// own headers) to e2b, the others to next.
func withE2B(e2b http.Handler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e2bserver.Match(r) {
			e2b.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *app) serve(f *sandboxFlags, listen, tokenFile string, sessionTimeout time.Duration) (retErr error) {
	if sessionTimeout <= 0 {
		return usagef("--session-timeout must be positive, got %v", sessionTimeout)
	}
	ctx, stop := serveSignals()
	defer stop()
	log := a.logger()
	token, given, generated, err := a.serveToken(tokenFile)
	if err != nil {
		return err
	}
	if generated != "" {
		defer os.Remove(generated) // valid for this server only
	}
	l, err := serveListen(listen, given)
	if err != nil {
		return err
	}
	defer l.Close()
	a.reclaim() // what a crashed predecessor left
	var metrics *serveMetrics
	mgr, err := a.manager(ctx, f, func(c *sandbox.Config) {
		c.OnCreate = func(d time.Duration, err error) { metrics.created(d, err) }
		c.OnExec = func(d time.Duration) { metrics.exec(d) }
	})
	if err != nil {
		return err
	}
	metrics = newServeMetrics(mgr.Len, mgr.Pooled)
	if f.pool > 0 {
		go func() { // ends when the pool is full, or at SIGTERM or Close
			if mgr.WaitPool(ctx) == nil {
				fmt.Fprintf(a.stderr, "petty serve: pool ready: %d sandboxes\n", mgr.Pooled())
			}
		}()
	}
	defer func() {
		if err := a.closeManager(mgr); err != nil && retErr == nil {
			retErr = err
		}
	}()
	srv := a.mcpServer(mgr).MCP()
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Logger: log, MaxRequestBodyBytes: maxMCPBody, SessionTimeout: sessionTimeout}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/metrics", metrics)
	e2b := e2bserver.New(mgr, e2bserver.Options{APIKey: token, Templates: []string{sandbox.DefaultImageName}, Logger: log})
	hs := &http.Server{Handler: withE2B(e2b, requireToken(token, mux)), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()
	where := "http://" + l.Addr().String()
	if l.Addr().Network() == "unix" {
		where = "unix://" + l.Addr().String()
	}
	fmt.Fprintf(a.stderr, "petty serve: listening on %s (MCP at /mcp, E2B's API, /healthz, /metrics)\n", where)
	log.Info("serving", "addr", where)

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("signal: stopping; destroying every sandbox")
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close() // streams still open (SSE): cut them
	}
	if path, ok := strings.CutPrefix(listen, "unix://"); ok {
		_ = os.Remove(path)
	}
	return nil
}
