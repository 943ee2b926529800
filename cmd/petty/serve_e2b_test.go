package main

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestServeE2B checks that petty serve answers E2B's API on its listener,
// with the token as the API key (and E2B's calls bypass the bearer check,
// which MCP keeps), and that a generated token is a key E2B's SDKs accept.
func TestServeE2B(t *testing.T) {
	h := newHarness(t)
	cmd, addr, log := h.startServe(nil, "--listen", "127.0.0.1:0")
	if addr == "" {
		t.Fatalf("no address:\n%s", log)
	}
	m := regexp.MustCompile(`generated a bearer token in (\S+)`).FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no generated token in:\n%s", log)
	}
	b, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	if !regexp.MustCompile(`^e2b_[0-9a-f]{40}$`).MatchString(token) {
		t.Errorf("generated token %q: the Python SDK wants ^e2b_[0-9a-f]+$", token)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	post := func(key string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest("POST", addr+"/sandboxes", strings.NewReader(`{"templateID":"base","timeout":60}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	if resp, body := post("e2b_wrong"); resp.StatusCode != http.StatusUnauthorized || body["code"] != 401.0 {
		t.Errorf("a wrong key: %s %v", resp.Status, body)
	}
	resp, body := post(token)
	if resp.StatusCode != http.StatusCreated || body["sandboxID"] == nil {
		t.Fatalf("POST /sandboxes: %s %v", resp.Status, body)
	}
	id := body["sandboxID"].(string)
	req, _ := http.NewRequest("GET", addr+"/health", nil)
	req.Header.Set("E2b-Sandbox-Id", id)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("envd /health: %s", resp.Status)
	}
	// MCP keeps its bearer token.
	if resp, err := hc.Get(addr + "/healthz"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/healthz without the bearer: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	pid := h.vmmPID(id)
	stopServe(t, cmd)
	waitExit(t, pid)
}
