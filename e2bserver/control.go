package e2bserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pettyvm/petty/sandbox"
)

// maxControlBody bounds a control-plane request body.
const maxControlBody = 1 << 20

// defaultSandboxTimeout is a sandbox's lifetime when the create request
// names none (the API's default).
const defaultSandboxTimeout = 15 * time.Second

// newSandbox is the body of POST /sandboxes (the API's NewSandbox).
type newSandbox struct {
	TemplateID string            `json:"templateID"`
	Timeout    *int              `json:"timeout"`
	Metadata   map[string]string `json:"metadata"`
	EnvVars    map[string]string `json:"envVars"`
}

// sandboxJSON is the API's Sandbox: what create and connect answer.
type sandboxJSON struct {
	TemplateID      string  `json:"templateID"`
	SandboxID       string  `json:"sandboxID"`
	ClientID        string  `json:"clientID"`
	EnvdVersion     string  `json:"envdVersion"`
	EnvdAccessToken string  `json:"envdAccessToken"`
	Domain          *string `json:"domain"`
}

// listedSandbox is the API's ListedSandbox (and, with the token,
// SandboxDetail).
type listedSandbox struct {
	TemplateID      string            `json:"templateID"`
	SandboxID       string            `json:"sandboxID"`
	ClientID        string            `json:"clientID"`
	StartedAt       string            `json:"startedAt"`
	EndAt           string            `json:"endAt"`
	CPUCount        int               `json:"cpuCount"`
	MemoryMB        int               `json:"memoryMB"`
	DiskSizeMB      int               `json:"diskSizeMB"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	State           string            `json:"state"`
	EnvdVersion     string            `json:"envdVersion"`
	EnvdAccessToken string            `json:"envdAccessToken,omitempty"`
}

// timeoutBody is the body of POST /sandboxes/{id}/timeout and connect.
type timeoutBody struct {
	Timeout int `json:"timeout"`
}

func (s *Server) apiRoutes() http.Handler {
	mux := http.NewServeMux()
	for _, prefix := range []string{"", "/v2"} {
		mux.HandleFunc("POST "+prefix+"/sandboxes", s.create)
		mux.HandleFunc("GET "+prefix+"/sandboxes", s.list)
		mux.HandleFunc("POST "+prefix+"/sandboxes/{id}/connect", s.connect)
	}
	mux.HandleFunc("GET /sandboxes/{id}", s.get)
	mux.HandleFunc("DELETE /sandboxes/{id}", s.kill)
	mux.HandleFunc("POST /sandboxes/{id}/timeout", s.setTimeout)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s is not served by petty", r.Method, r.URL.Path))
	})
	return mux
}

// decode reads a JSON body into v (an empty body leaves v as is).
func decode(r *http.Request, v any) error {
	err := json.NewDecoder(io.LimitReader(r.Body, maxControlBody)).Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req newSandbox
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	img, ok := s.imageOf(req.TemplateID)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("template %q not found", req.TemplateID))
		return
	}
	timeout := defaultSandboxTimeout
	if req.Timeout != nil {
		if *req.Timeout < 0 {
			writeError(w, http.StatusBadRequest, "timeout must not be negative")
			return
		}
		if *req.Timeout > 0 {
			timeout = time.Duration(*req.Timeout) * time.Second
		}
	}
	opts := sandbox.Options{Image: img, Timeout: timeout, Labels: req.Metadata}
	for k, v := range req.EnvVars {
		opts.Env = append(opts.Env, k+"="+v)
	}
	sb, err := s.mgr.Create(r.Context(), opts)
	if err != nil {
		s.log.Warn("e2b: creating a sandbox", "template", req.TemplateID, "err", err)
		writeError(w, statusOf(err), err.Error())
		return
	}
	s.forget()
	writeJSON(w, http.StatusCreated, s.sandboxJSON(sb))
}

func (s *Server) sandboxJSON(sb *sandbox.Sandbox) sandboxJSON {
	return sandboxJSON{TemplateID: templateOf(sb.Info().Image), SandboxID: sb.ID(), ClientID: s.opts.ClientID,
		EnvdVersion: EnvdVersion, EnvdAccessToken: s.token(sb.ID())}
}

func (s *Server) listed(sb *sandbox.Sandbox) listedSandbox {
	in := sb.Info()
	state := "running"
	if in.State != "running" {
		state = in.State
	}
	return listedSandbox{TemplateID: templateOf(in.Image), SandboxID: in.ID, ClientID: s.opts.ClientID,
		StartedAt: rfc3339(in.CreatedAt), EndAt: rfc3339(in.ExpiresAt), CPUCount: in.VCPUs,
		MemoryMB: in.MemoryMiB, Metadata: in.Labels, State: state, EnvdVersion: EnvdVersion}
}

// sandbox finds the sandbox of the request's {id}, or answers 404.
func (s *Server) sandbox(w http.ResponseWriter, r *http.Request) (*sandbox.Sandbox, bool) {
	sb, err := s.mgr.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("sandbox %q not found", r.PathValue("id")))
		return nil, false
	}
	return sb, true
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandbox(w, r)
	if !ok {
		return
	}
	d := s.listed(sb)
	d.EnvdAccessToken = s.token(sb.ID())
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) kill(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	err := s.mgr.Destroy(ctx, id)
	switch {
	case errors.Is(err, sandbox.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("sandbox %q not found", id))
		return
	case err != nil:
		s.log.Warn("e2b: destroying a sandbox", "id", id, "err", err)
	}
	s.forget()
	w.WriteHeader(http.StatusNoContent)
}

// timeoutOf reads a {"timeout": seconds} body.
func timeoutOf(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	var body timeoutBody
	if err := decode(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return 0, false
	}
	if body.Timeout < 0 {
		writeError(w, http.StatusBadRequest, "timeout must not be negative")
		return 0, false
	}
	return time.Duration(body.Timeout) * time.Second, true
}

func (s *Server) setTimeout(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandbox(w, r)
	if !ok {
		return
	}
	d, ok := timeoutOf(w, r)
	if !ok {
		return
	}
	if d == 0 {
		d = time.Millisecond // expire now
	}
	if err := sb.SetTimeout(d); err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// connect answers the sandbox, extending its lifetime to the timeout asked
// for when that is longer than what is left (E2B: "TTL is only extended").
func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandbox(w, r)
	if !ok {
		return
	}
	d, ok := timeoutOf(w, r)
	if !ok {
		return
	}
	if d > 0 && time.Until(sb.Info().ExpiresAt) < d {
		if err := sb.SetTimeout(d); err != nil {
			writeError(w, statusOf(err), err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, s.sandboxJSON(sb))
}
