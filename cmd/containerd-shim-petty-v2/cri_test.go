package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crictlFix says how to get crictl.
const crictlFix = "GOBIN=DIR go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0 and put DIR in PATH (hack/test.sh does)"

// crictl runs crictl against the private containerd's CRI plugin.
func (e *env) crictl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "crictl", append([]string{"--runtime-endpoint", "unix://" + e.sock, "--image-endpoint", "unix://" + e.sock, "--timeout", "3m"}, args...)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCRI runs a Kubernetes-style pod through containerd's CRI plugin with
// crictl, as kubelet would with runtimeClassName: petty: the pod sandbox
// boots the VM, a container of the pod runs in it (its kernel is the
// guest's), exec and logs work, and stopping and removing the pod leaves
// nothing on the host.
func TestCRI(t *testing.T) {
	requireE2E(t)
	if _, err := exec.LookPath("crictl"); err != nil {
		t.Skip("crictl not found: " + crictlFix)
	}
	e := startContainerd(t, true)
	ctx := testCtx(t)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	pod := map[string]any{
		"metadata":      map[string]any{"name": "petty-pod", "namespace": "default", "uid": "petty-pod-uid", "attempt": 0},
		"log_directory": logDir,
		"linux": map[string]any{"security_context": map[string]any{
			"namespace_options": map[string]any{"network": 2}, // NODE: no CNI here
		}},
	}
	ctr := map[string]any{
		"metadata": map[string]any{"name": "app"},
		"image":    map[string]any{"image": testImage},
		"command":  []string{"sh", "-c", "echo hello-cri; uname -r; while :; do sleep 1; done"},
		"log_path": "app.log",
	}
	podJSON, ctrJSON := filepath.Join(dir, "pod.json"), filepath.Join(dir, "ctr.json")
	writeJSON(t, podJSON, pod)
	writeJSON(t, ctrJSON, ctr)

	began := time.Now()
	out, err := e.crictl(ctx, "runp", "--runtime", "petty", podJSON)
	if err != nil {
		t.Fatalf("crictl runp: %v\n%s", err, out)
	}
	podID := strings.TrimSpace(out)
	t.Logf("pod sandbox (VM boot) ready in %v", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		e.crictl(context.Background(), "stopp", podID)
		e.crictl(context.Background(), "rmp", "-f", podID)
	})
	out, err = e.crictl(ctx, "create", podID, ctrJSON, podJSON)
	if err != nil {
		t.Fatalf("crictl create: %v\n%s", err, out)
	}
	ctrID := strings.TrimSpace(out)
	if out, err := e.crictl(ctx, "start", ctrID); err != nil {
		t.Fatalf("crictl start: %v\n%s", err, out)
	}

	// Logs: the CRI plugin writes the container's stdout to the log file.
	var logs string
	for deadline := time.Now().Add(time.Minute); ; {
		logs, _ = e.crictl(ctx, "logs", ctrID)
		if strings.Contains(logs, "cloud-amd64") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logs, "hello-cri\n") || !strings.Contains(logs, "-cloud-amd64\n") {
		t.Errorf("crictl logs = %q, want hello-cri and the guest's kernel release", logs)
	}

	out, err = e.crictl(ctx, "exec", ctrID, "uname", "-r")
	if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "-cloud-amd64") {
		t.Errorf("crictl exec uname -r = %v, %q; want the guest's kernel", err, out)
	}
	out, err = e.crictl(ctx, "exec", ctrID, "sh", "-c", "exit 3")
	if err == nil {
		t.Errorf("crictl exec of exit 3 succeeded: %q", out)
	}
	if out, err := e.crictl(ctx, "inspect", "-o", "go-template", "--template", "{{.status.state}}", ctrID); err != nil || !strings.Contains(out, "RUNNING") {
		t.Errorf("crictl inspect: %v, %q", err, out)
	}

	if out, err := e.crictl(ctx, "stop", "--timeout", "2", ctrID); err != nil {
		t.Errorf("crictl stop: %v\n%s", err, out)
	}
	if out, err := e.crictl(ctx, "rm", ctrID); err != nil {
		t.Errorf("crictl rm: %v\n%s", err, out)
	}
	if out, err := e.crictl(ctx, "stopp", podID); err != nil {
		t.Errorf("crictl stopp: %v\n%s", err, out)
	}
	if out, err := e.crictl(ctx, "rmp", podID); err != nil {
		t.Errorf("crictl rmp: %v\n%s", err, out)
	}
	waitNoLeftovers(t, e)
}
