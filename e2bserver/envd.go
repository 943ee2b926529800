package e2bserver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"connectrpc.com/connect"

	"github.com/pettyvm/petty/sandbox"
)

// AccessTokenHeader carries a sandbox's envdAccessToken.
const AccessTokenHeader = "X-Access-Token"

// Users E2B selects.
const (
	defaultUser = "user"
	rootUser    = "root"
)

type sandboxKey struct{}

// sandboxFrom returns the sandbox serveEnvd put in ctx.
func sandboxFrom(ctx context.Context) *sandbox.Sandbox {
	sb, _ := ctx.Value(sandboxKey{}).(*sandbox.Sandbox)
	return sb
}

// isConnect reports whether r is a Connect call (not /files or /health).
func isConnect(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/process.Process/") || strings.HasPrefix(r.URL.Path, "/filesystem.Filesystem/")
}

// serveEnvd serves an in-sandbox call: it finds the sandbox named by the
// E2b-Sandbox-Id header (a dead or unknown one answers 502, Connect
// "unavailable"), checks its access token (401, "unauthenticated") and
// dispatches.
func (s *Server) serveEnvd(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(SandboxIDHeader)
	fail := func(status int, code connect.Code, msg string) {
		if isConnect(r) {
			_ = connect.NewErrorWriter().Write(w, r, connect.NewError(code, errors.New(msg)))
			return
		}
		writeError(w, status, msg)
	}
	sb, err := s.mgr.Get(id)
	if err != nil {
		fail(http.StatusBadGateway, connect.CodeUnavailable, fmt.Sprintf("sandbox %q is not running", id))
		return
	}
	if r.URL.Path != "/health" && !equal(r.Header.Get(AccessTokenHeader), s.token(id)) {
		fail(http.StatusUnauthorized, connect.CodeUnauthenticated, "invalid access token")
		return
	}
	s.envd.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sandboxKey{}, sb)))
}

// health answers GET /health: 204 while the sandbox lives (serveEnvd
// answered 502 for a dead one).
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	select {
	case <-sandboxFrom(r.Context()).Done():
		writeError(w, http.StatusBadGateway, "sandbox is not running")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// user is the guest user a call runs as.
type user struct {
	name string
	home string
}

// lookupUser returns the user called name ("" means E2B's default).
func lookupUser(name string) (user, error) {
	switch name {
	case "", defaultUser:
		return user{name: defaultUser, home: "/home/user"}, nil
	case rootUser:
		return user{name: rootUser, home: "/root"}, nil
	default:
		return user{}, fmt.Errorf("unknown user %q: petty's sandboxes have %q and %q", name, defaultUser, rootUser)
	}
}

// basicUser returns the user named by a Basic Authorization header (E2B
// sends "Basic base64(name:)"), or E2B's default user without one.
func basicUser(h http.Header) (user, error) {
	a := h.Get("Authorization")
	if a == "" {
		return lookupUser("")
	}
	enc, ok := strings.CutPrefix(a, "Basic ")
	if !ok {
		return user{}, fmt.Errorf("authorization: want Basic")
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return user{}, fmt.Errorf("authorization: %w", err)
	}
	name, _, _ := strings.Cut(string(b), ":")
	return lookupUser(name)
}

// abs resolves p against the user's home, as envd does for relative paths.
func (u user) abs(p string) string {
	if p == "" {
		return u.home
	}
	if strings.HasPrefix(p, "~/") || p == "~" {
		p = strings.TrimPrefix(strings.TrimPrefix(p, "~"), "/")
	}
	if !path.IsAbs(p) {
		p = path.Join(u.home, p)
	}
	return path.Clean(p)
}
