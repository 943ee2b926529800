package e2bserver_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pettyvm/petty/e2bserver"
	"github.com/pettyvm/petty/sandbox"
)

func TestAPIKeyRequired(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	routes := []struct{ method, path string }{
		{"POST", "/sandboxes"}, {"POST", "/v2/sandboxes"}, {"GET", "/sandboxes"}, {"GET", "/v2/sandboxes"},
		{"GET", "/sandboxes/x"}, {"DELETE", "/sandboxes/x"}, {"POST", "/sandboxes/x/timeout"},
		{"POST", "/sandboxes/x/connect"}, {"POST", "/v2/sandboxes/x/connect"},
	}
	for _, key := range []string{"", "e2b_wrong", testKey + "0"} {
		for _, r := range routes {
			var got apiErr
			resp := e.doKey(key, r.method, r.path, map[string]any{"templateID": "base"}, &got)
			if resp.StatusCode != http.StatusUnauthorized || got.Code != 401 || got.Message == "" {
				t.Errorf("key %q: %s %s: %s %+v, want 401 {code: 401, message}", key, r.method, r.path, resp.Status, got)
			}
		}
	}
	if n := e.mgr.Len(); n != 0 {
		t.Errorf("%d sandboxes created without a key", n)
	}
}

func TestCreateGetConnectKill(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	for _, path := range []string{"/sandboxes", "/v2/sandboxes"} {
		var c created
		resp := e.do("POST", path, map[string]any{"templateID": "base", "timeout": 300,
			"metadata": map[string]string{"app": "t"}, "envVars": map[string]string{"A": "1"}}, &c)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
		if c.SandboxID == "" || c.TemplateID != "base" || c.ClientID == "" || c.EnvdVersion != e2bserver.EnvdVersion || len(c.EnvdAccessToken) < 32 {
			t.Errorf("POST %s: %+v", path, c)
		}
		sb, err := e.mgr.Get(c.SandboxID)
		if err != nil {
			t.Fatal(err)
		}
		if left := time.Until(sb.Info().ExpiresAt); left < 290*time.Second || left > 300*time.Second {
			t.Errorf("timeout 300 s: expires in %v", left)
		}
		if got := sb.Info().Labels; !cmp.Equal(got, map[string]string{"app": "t"}) {
			t.Errorf("labels %v", got)
		}

		var d map[string]any
		if resp := e.do("GET", "/sandboxes/"+c.SandboxID, nil, &d); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %s", resp.Status)
		}
		for _, k := range []string{"sandboxID", "templateID", "clientID", "startedAt", "endAt", "cpuCount", "memoryMB", "diskSizeMB", "state", "envdVersion", "envdAccessToken"} {
			if _, ok := d[k]; !ok {
				t.Errorf("GET: no %s in %v", k, d)
			}
		}
		if d["state"] != "running" || d["envdAccessToken"] != c.EnvdAccessToken {
			t.Errorf("GET: %v", d)
		}
		for _, ts := range []string{"startedAt", "endAt"} {
			if _, err := time.Parse(time.RFC3339, d[ts].(string)); err != nil {
				t.Errorf("%s: %v", ts, err)
			}
		}

		// connect only extends the lifetime.
		for _, cp := range []string{"/sandboxes/", "/v2/sandboxes/"} {
			var cc created
			if resp := e.do("POST", cp+c.SandboxID+"/connect", map[string]any{"timeout": 10}, &cc); resp.StatusCode != http.StatusOK {
				t.Fatalf("connect: %s", resp.Status)
			}
			if cc != c {
				t.Errorf("connect: %+v, want %+v", cc, c)
			}
			if left := time.Until(sb.Info().ExpiresAt); left < 200*time.Second {
				t.Errorf("connect with a shorter timeout shortened the lifetime to %v", left)
			}
		}
		if resp := e.do("POST", "/sandboxes/"+c.SandboxID+"/connect", map[string]any{"timeout": 900}, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("connect: %s", resp.Status)
		}
		if left := time.Until(sb.Info().ExpiresAt); left < 890*time.Second {
			t.Errorf("connect with timeout 900: expires in %v", left)
		}

		if resp := e.do("DELETE", "/sandboxes/"+c.SandboxID, nil, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %s", resp.Status)
		}
		for _, r := range []struct{ method, path string }{
			{"DELETE", "/sandboxes/" + c.SandboxID}, {"GET", "/sandboxes/" + c.SandboxID},
			{"POST", "/sandboxes/" + c.SandboxID + "/timeout"}, {"POST", "/sandboxes/" + c.SandboxID + "/connect"},
		} {
			var got apiErr
			if resp := e.do(r.method, r.path, map[string]any{"timeout": 5}, &got); resp.StatusCode != http.StatusNotFound || got.Code != 404 {
				t.Errorf("%s %s after DELETE: %s %+v, want 404 {code: 404}", r.method, r.path, resp.Status, got)
			}
		}
	}
}

func TestCreateErrors(t *testing.T) {
	e := newEnv(t, sandbox.Config{MaxSandboxes: 1, MaxTimeout: time.Hour})
	tests := []struct {
		name string
		body any
		want int
	}{
		{"unknown template", map[string]any{"templateID": "nope"}, http.StatusNotFound},
		{"negative timeout", map[string]any{"templateID": "base", "timeout": -1}, http.StatusBadRequest},
		{"over the maximum", map[string]any{"templateID": "base", "timeout": 7200}, http.StatusBadRequest},
		{"not JSON", "[", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got apiErr
			if resp := e.do("POST", "/sandboxes", tt.body, &got); resp.StatusCode != tt.want || got.Code != tt.want {
				t.Errorf("%s %+v, want %d", resp.Status, got, tt.want)
			}
		})
	}
	e.create(map[string]any{"templateID": "default"})
	var got apiErr
	if resp := e.do("POST", "/sandboxes", map[string]any{"templateID": "base"}, &got); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("over MaxSandboxes: %s %+v, want 429", resp.Status, got)
	}
	if resp := e.do("POST", "/sandboxes/x/pause", nil, &got); resp.StatusCode != http.StatusNotFound || got.Code != 404 {
		t.Errorf("an unserved route: %s %+v", resp.Status, got)
	}
}

func TestSetTimeoutExpires(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base", "timeout": 300})
	sb, err := e.mgr.Get(c.SandboxID)
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.do("POST", "/sandboxes/"+c.SandboxID+"/timeout", map[string]any{"timeout": 1}, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("timeout: %s", resp.Status)
	}
	select {
	case <-sb.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the sandbox outlived its timeout of 1 s")
	}
	if resp := e.do("GET", "/sandboxes/"+c.SandboxID, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after expiry: %s", resp.Status)
	}
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	var ids []string
	for i := range 3 {
		meta := map[string]string{"n": string(rune('a' + i)), "group": "g"}
		if i == 2 {
			meta["group"] = "other"
		}
		ids = append(ids, e.create(map[string]any{"templateID": "base", "metadata": meta}).SandboxID)
	}
	for _, base := range []string{"/sandboxes", "/v2/sandboxes"} {
		var all []map[string]any
		page := base + "?limit=2"
		for n := 0; page != ""; n++ {
			var got []map[string]any
			resp := e.do("GET", page, nil, &got)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", page, resp.Status)
			}
			all = append(all, got...)
			page = ""
			if next := resp.Header.Get(e2bserver.NextTokenHeader); next != "" {
				if len(got) != 2 {
					t.Errorf("a page of %d with a next token", len(got))
				}
				page = base + "?limit=2&nextToken=" + url.QueryEscape(next)
			}
			if n > 3 {
				t.Fatal("paging does not end")
			}
		}
		var gotIDs []string
		for _, s := range all {
			gotIDs = append(gotIDs, s["sandboxID"].(string))
			if s["state"] != "running" || s["templateID"] != "base" {
				t.Errorf("listed %v", s)
			}
		}
		if !cmp.Equal(gotIDs, ids) {
			t.Errorf("%s pages: %v, want %v", base, gotIDs, ids)
		}
	}
	var got []map[string]any
	e.do("GET", "/v2/sandboxes?metadata="+url.QueryEscape("group=g&n=b"), nil, &got)
	if len(got) != 1 || got[0]["sandboxID"] != ids[1] {
		t.Errorf("metadata filter: %v", got)
	}
	e.do("GET", "/v2/sandboxes?metadata="+url.QueryEscape("gr%6Fup=g&n="+url.PathEscape("b")), nil, &got)
	if len(got) != 1 || got[0]["sandboxID"] != ids[1] {
		t.Errorf("metadata filter: %v", got)
	}
	var raw json.RawMessage
	e.do("GET", "/v2/sandboxes?state=paused", nil, &raw)
	if strings.TrimSpace(string(raw)) != "[]" {
		t.Errorf("state=paused: %s, want []", raw)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "nextToken=%25"} {
		if resp := e.do("GET", "/v2/sandboxes?"+q, nil, nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", q, resp.Status)
		}
	}
	// A removed sandbox does not break the cursor that names it.
	resp := e.do("GET", "/v2/sandboxes?limit=1", nil, &got)
	next := resp.Header.Get(e2bserver.NextTokenHeader)
	e.do("DELETE", "/sandboxes/"+ids[1], nil, nil)
	e.do("GET", "/v2/sandboxes?limit=1&nextToken="+url.QueryEscape(next), nil, &got)
	if len(got) != 1 || got[0]["sandboxID"] != ids[2] {
		t.Errorf("after removing the cursor's sandbox: %v", got)
	}
}
