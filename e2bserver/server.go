package e2bserver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/pettyvm/petty/e2b/envdpb/filesystem/filesystemconnect"
	"github.com/pettyvm/petty/e2b/envdpb/process/processconnect"
	"github.com/pettyvm/petty/sandbox"
)

// EnvdVersion is the envd version petty announces: the SDKs enable
// closeStdin (0.5.2) and octet-stream uploads (0.5.7) from it, and send no
// default user (0.4.0).
const EnvdVersion = "0.5.7"

// maxRPCBody bounds a Connect request message (SendInput's data).
const maxRPCBody = 16 << 20

// DefaultTemplate is the template id that means the default image.
const DefaultTemplate = "base"

// SandboxIDHeader names the sandbox of an in-sandbox call in the SDKs'
// single-URL mode (E2B_SANDBOX_URL).
const SandboxIDHeader = "E2b-Sandbox-Id"

// Options configure a Server.
type Options struct {
	// APIKey is the key every control-plane request must carry in
	// X-API-Key. Required.
	APIKey string
	// Templates are the template ids (image names) the server accepts
	// besides DefaultTemplate; nil accepts any (the Manager's resolver
	// decides).
	Templates []string
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
	// ClientID is the clientID the sandboxes report. Default: "petty".
	ClientID string
}

// Server serves E2B's API over a sandbox.Manager. It is an http.Handler.
type Server struct {
	mgr   *sandbox.Manager
	opts  Options
	log   *slog.Logger
	api   http.Handler
	envd  *http.ServeMux
	procs *processService

	mu sync.Mutex
	// tokens holds each sandbox's envdAccessToken (made on first need).
	tokens map[string]string
}

// New returns a Server over mgr. The caller owns mgr.
func New(mgr *sandbox.Manager, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ClientID == "" {
		opts.ClientID = "petty"
	}
	s := &Server{mgr: mgr, opts: opts, log: opts.Logger, tokens: map[string]string{}}
	s.api = s.apiRoutes()
	s.procs = newProcessService(s)
	s.envd = http.NewServeMux()
	s.envd.HandleFunc("GET /health", s.health)
	s.envd.HandleFunc("GET /files", s.getFile)
	s.envd.HandleFunc("POST /files", s.postFile)
	// No compression: E2B's clients never ask for it and some do not
	// read compressed stream messages.
	hopts := []connect.HandlerOption{connect.WithCompression("gzip", nil, nil), connect.WithReadMaxBytes(maxRPCBody)}
	s.envd.Handle(filesystemconnect.NewFilesystemHandler(&fsService{s: s}, hopts...))
	s.envd.Handle(processconnect.NewProcessHandler(s.procs, hopts...))
	return s
}

// Match reports whether r is a request of E2B's API: an in-sandbox call
// (it names its sandbox in E2b-Sandbox-Id) or a control-plane route.
func Match(r *http.Request) bool {
	if r.Header.Get(SandboxIDHeader) != "" {
		return true
	}
	p := r.URL.Path
	return p == "/sandboxes" || strings.HasPrefix(p, "/sandboxes/") ||
		p == "/v2/sandboxes" || strings.HasPrefix(p, "/v2/sandboxes/")
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(SandboxIDHeader) != "" {
		s.serveEnvd(w, r)
		return
	}
	if !equal(r.Header.Get("X-API-Key"), s.opts.APIKey) {
		writeError(w, http.StatusUnauthorized, "invalid API key")
		return
	}
	s.api.ServeHTTP(w, r)
}

// equal compares secrets in constant time; an empty want matches nothing.
func equal(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// token returns the envdAccessToken of the sandbox id, making one if it
// has none yet (a sandbox created over MCP, say).
func (s *Server) token(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		var b [20]byte
		_, _ = rand.Read(b[:])
		t = hex.EncodeToString(b[:])
		s.tokens[id] = t
	}
	return t
}

// forget drops the tokens and process tags of sandboxes no longer alive.
func (s *Server) forget() {
	live := map[string]bool{}
	for _, sb := range s.mgr.List(nil) {
		live[sb.ID()] = true
	}
	s.mu.Lock()
	for id := range s.tokens {
		if !live[id] {
			delete(s.tokens, id)
		}
	}
	s.mu.Unlock()
	s.procs.mu.Lock()
	for k := range s.procs.tags {
		if !live[k.sandbox] {
			delete(s.procs.tags, k)
		}
	}
	for k := range s.procs.pids {
		if !live[k.sandbox] {
			delete(s.procs.pids, k)
		}
	}
	s.procs.mu.Unlock()
}

// templateOf is the template id of a sandbox's image.
func templateOf(image string) string {
	if image == "" || image == sandbox.DefaultImageName {
		return DefaultTemplate
	}
	return image
}

// imageOf is the image of a template id, and whether the server has it.
func (s *Server) imageOf(template string) (string, bool) {
	if template == "" || template == DefaultTemplate {
		return "", true
	}
	if s.opts.Templates != nil && !slices.Contains(s.opts.Templates, template) {
		return "", false
	}
	return template, true
}

// rfc3339 formats t as the SDKs parse it.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
