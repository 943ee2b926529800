package e2bserver_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pettyvm/petty/e2bserver"
	"github.com/pettyvm/petty/sandbox"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		path, sandbox string
		want          bool
	}{
		{"/sandboxes", "", true},
		{"/sandboxes/abc/timeout", "", true},
		{"/v2/sandboxes", "", true},
		{"/v2/sandboxes/abc/connect", "", true},
		{"/files", "abc", true},
		{"/process.Process/Start", "abc", true},
		{"/health", "", false},
		{"/mcp", "", false},
		{"/healthz", "", false},
		{"/sandboxesx", "", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.path, nil)
		if tt.sandbox != "" {
			r.Header.Set(e2bserver.SandboxIDHeader, tt.sandbox)
		}
		if got := e2bserver.Match(r); got != tt.want {
			t.Errorf("Match(%s, sandbox %q) = %v, want %v", tt.path, tt.sandbox, got, tt.want)
		}
	}
}

func TestTimeoutAndConnectBodies(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base", "timeout": 300})
	for _, path := range []string{"/sandboxes/" + c.SandboxID + "/timeout", "/sandboxes/" + c.SandboxID + "/connect", "/v2/sandboxes/" + c.SandboxID + "/connect"} {
		for _, body := range []any{"[", map[string]any{"timeout": -1}, map[string]any{"timeout": "x"}} {
			var got apiErr
			if resp := e.do("POST", path, body, &got); resp.StatusCode != http.StatusBadRequest || got.Code != 400 {
				t.Errorf("POST %s %v: %s %+v, want 400", path, body, resp.Status, got)
			}
		}
	}
	var got apiErr
	if resp := e.do("GET", "/sandboxes/"+c.SandboxID+"/timeout", nil, &got); resp.StatusCode != http.StatusNotFound || got.Code != 404 {
		t.Errorf("GET on a POST route: %s %+v, want a JSON 404", resp.Status, got)
	}
}
