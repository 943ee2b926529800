package e2bserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/pettyvm/petty/e2b/envdpb/filesystem/filesystemconnect"
	"github.com/pettyvm/petty/e2b/envdpb/process/processconnect"
	"github.com/pettyvm/petty/e2bserver"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// testKey is the API key of the test servers.
const testKey = "e2b_0123456789abcdef0123456789abcdef01234567"

// env is a test server over a fake manager.
type env struct {
	t   *testing.T
	mgr *sandbox.Manager
	url string
}

// newEnv starts an E2B server over a fake manager (sandboxes whose guest
// is petty-agent on the host), closed when the test ends.
func newEnv(t *testing.T, cfg sandbox.Config) *env {
	t.Helper()
	mgr := sandboxtest.FakeManager(t, cfg)
	srv := httptest.NewServer(e2bserver.New(mgr, e2bserver.Options{APIKey: testKey, Templates: []string{"default"}}))
	t.Cleanup(srv.Close)
	return &env{t: t, mgr: mgr, url: srv.URL}
}

// do sends a control-plane request with the API key and decodes a JSON
// answer into out (when not nil); it returns the response.
func (e *env) do(method, path string, body any, out any) *http.Response {
	e.t.Helper()
	return e.doKey(testKey, method, path, body, out)
}

func (e *env) doKey(key, method, path string, body any, out any) *http.Response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v in %q", method, path, err, b)
		}
	}
	return resp
}

// created is the answer to POST /sandboxes.
type created struct {
	SandboxID       string  `json:"sandboxID"`
	TemplateID      string  `json:"templateID"`
	ClientID        string  `json:"clientID"`
	EnvdVersion     string  `json:"envdVersion"`
	EnvdAccessToken string  `json:"envdAccessToken"`
	Domain          *string `json:"domain"`
}

// apiErr is the control plane's error body.
type apiErr struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// create creates a sandbox through the API.
func (e *env) create(body map[string]any) created {
	e.t.Helper()
	var c created
	if resp := e.do("POST", "/sandboxes", body, &c); resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST /sandboxes: %s", resp.Status)
	}
	return c
}

// envd sends an in-sandbox request for sb with its token.
func (e *env) envd(sb created, method, path string, hdr http.Header, body io.Reader) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set(e2bserver.SandboxIDHeader, sb.SandboxID)
	if req.Header.Get(e2bserver.AccessTokenHeader) == "" {
		req.Header.Set(e2bserver.AccessTokenHeader, sb.EnvdAccessToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

// headers is a connect interceptor that sets the E2B headers of sb, as
// user (root: petty-agent on the host has no "user").
func headers(id, token, user string) connect.Interceptor {
	set := func(h http.Header) {
		h.Set(e2bserver.SandboxIDHeader, id)
		h.Set(e2bserver.AccessTokenHeader, token)
		if user != "" {
			h.Set("Authorization", basic(user))
		}
	}
	return interceptor{set: set}
}

type interceptor struct{ set func(http.Header) }

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		i.set(req.Header())
		return next(ctx, req)
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		i.set(conn.RequestHeader())
		return conn
	}
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// basic is E2B's Authorization header for user.
func basic(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"))
}

// clients returns the Connect clients of sb (JSON codec when json), as root.
func (e *env) clients(sb created, json bool) (processconnect.ProcessClient, filesystemconnect.FilesystemClient) {
	return e.clientsAs(sb, sb.EnvdAccessToken, "root", json)
}

func (e *env) clientsAs(sb created, token, user string, json bool) (processconnect.ProcessClient, filesystemconnect.FilesystemClient) {
	opts := []connect.ClientOption{connect.WithInterceptors(headers(sb.SandboxID, token, user))}
	if json {
		opts = append(opts, connect.WithProtoJSON())
	}
	return processconnect.NewProcessClient(http.DefaultClient, e.url, opts...),
		filesystemconnect.NewFilesystemClient(http.DefaultClient, e.url, opts...)
}

// ctx is a context bounded for one call.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
