package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunFailsFastWithoutFirecracker checks that petty run --vmm
// firecracker without a usable firecracker binary fails in well under a
// second, naming the binary and how to get one, before any guest image or
// kernel work (without --kernel, petty would build its default image).
func TestRunFailsFastWithoutFirecracker(t *testing.T) {
	h := newHarness(t)
	emptyPath := t.TempDir() // a $PATH with no firecracker in it
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"explicit binary missing", []string{"run", "--vmm", "firecracker", "--firecracker-bin", "/nonexistent/firecracker", "--", "true"},
			nil, []string{`"/nonexistent/firecracker"`, "PETTY_FIRECRACKER_BIN", "releases"}},
		{"env binary missing", []string{"run", "--vmm", "firecracker", "--", "true"},
			[]string{"PETTY_FIRECRACKER_BIN=/nonexistent/fc"}, []string{`"/nonexistent/fc"`}},
		{"not in PATH", []string{"run", "--vmm", "firecracker", "--", "true"},
			[]string{"PETTY_FIRECRACKER_BIN=", "PATH=" + emptyPath}, []string{"not in $PATH", "PETTY_FIRECRACKER_BIN"}},
		{"detached too", []string{"run", "--detach", "--vmm", "firecracker", "--firecracker-bin", "/nonexistent/firecracker"},
			nil, []string{`"/nonexistent/firecracker"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, stdout, stderr := h.command(nil, tt.args...)
			c.Env = append(append([]string(nil), h.env...), tt.env...)
			began := time.Now()
			_ = c.Run()
			took := time.Since(began)
			t.Logf("failed in %v", took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("petty %s took %v to fail, want < 1s", strings.Join(tt.args, " "), took)
			}
			if code := c.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			// No image work started: the image cache was not even created.
			if _, err := os.Stat(filepath.Join(filepath.Dir(h.runDir), "cache", "petty")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the image cache exists (err=%v): petty started image work", err)
			}
		})
	}
}

// TestRunMACFlag checks --mac: it needs --tap, and vm's validation refuses
// a MAC that is not a unicast xx:xx:xx:xx:xx:xx and a tap that does not
// exist, naming them, before booting anything.
func TestRunMACFlag(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"mac without tap", []string{"--mac", "06:00:ac:10:00:02"}, 2, []string{"--mac needs --tap"}},
		{"dotted mac", []string{"--tap", "lo", "--mac", "0600.ac10.0002"}, 1, []string{"Network.MAC", "0600.ac10.0002"}},
		{"multicast mac", []string{"--tap", "lo", "--mac", "01:00:5e:00:00:01"}, 1, []string{"Network.MAC", "multicast"}},
		{"missing tap", []string{"--tap", "nosuchtap9"}, 1, []string{"Network.Tap", `"nosuchtap9"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append(append([]string{"run"}, h.vmFlags()...), tt.args...), "--", "true")
			res := h.run(nil, args...)
			if res.code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", res.code, tt.code, res.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
				}
			}
		})
	}
}
