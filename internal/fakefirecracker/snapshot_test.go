package main

import (
	"os"
	"path/filepath"
	"testing"
)

// snapshotOf boots a fake, snapshots it into dir (pause, create, resume) and
// returns the state and memory paths.
func snapshotOf(t *testing.T, dir string) (state, mem string) {
	t.Helper()
	p := startReady(t)
	a := p.conn()
	configure(t, p, a)
	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	state, mem = filepath.Join(dir, "state"), filepath.Join(dir, "mem")
	body := `{"snapshot_type":"Full","snapshot_path":` + q(state) + `,"mem_file_path":` + q(mem) + `}`
	a.fault("PUT", "/snapshot/create", body, "not paused")
	a.ok("PATCH", "/vm", `{"state":"Paused"}`)
	a.ok("PUT", "/snapshot/create", body)
	a.ok("PATCH", "/vm", `{"state":"Resumed"}`)
	if got := a.state(); got != stateRunning {
		t.Fatalf("after the snapshot: %q", got)
	}
	st, err := os.Stat(mem)
	if err != nil || st.Size() != 256<<20 {
		t.Fatalf("memory file: %v, %v; want 256 MiB", st, err)
	}
	return state, mem
}

func loadBody(state, mem, extra string) string {
	return `{"snapshot_path":` + q(state) + `,"mem_backend":{"backend_type":"File","backend_path":` + q(mem) + `}` + extra + `}`
}

func TestSnapshotCreateRules(t *testing.T) {
	p := startReady(t)
	a := p.conn()
	dir := t.TempDir()
	body := `{"snapshot_path":` + q(filepath.Join(dir, "s")) + `,"mem_file_path":` + q(filepath.Join(dir, "m")) + `}`
	a.fault("PUT", "/snapshot/create", body, msgNotSupportedPreBoot)
	a.fault("PUT", "/snapshot/create", `{"snapshot_path":"x"}`, "mem_file_path")
	configure(t, p, a)
	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	a.fault("PUT", "/snapshot/create", body, "not paused")
	a.ok("PATCH", "/vm", `{"state":"Paused"}`)
	a.fault("PUT", "/snapshot/create", `{"snapshot_path":"s","mem_file_path":"m","snapshot_type":"Half"}`, "snapshot_type")
	a.fault("PUT", "/snapshot/create", `{"snapshot_path":"s","mem_file_path":"m","snapshot_type":"Diff"}`, "dirty page tracking")
	a.fault("PUT", "/snapshot/load", loadBody("s", "m", ""), "not allowed after configuring boot-specific resources")
}

func TestSnapshotLoadResumes(t *testing.T) {
	state, mem := snapshotOf(t, t.TempDir())
	p := startReady(t)
	a := p.conn()
	a.ok("PUT", "/logger", `{"level":"Info"}`) // the logger is allowed first
	vs := filepath.Join(p.dir, "clone.sock")
	a.ok("PUT", "/snapshot/load", loadBody(state, mem, `,"resume_vm":true,"vsock_override":{"uds_path":`+q(vs)+`}`))
	if got := a.state(); got != stateRunning {
		t.Fatalf("after load with resume_vm: %q", got)
	}
	if _, err := os.Lstat(vs); err != nil {
		t.Errorf("vsock_override's socket: %v", err)
	}
	var cfg fullVMConfig
	a.getJSON("/vm/config", &cfg)
	if cfg.MachineConfig == nil || *cfg.MachineConfig.MemSizeMib != 256 || len(cfg.Drives) != 1 || *cfg.Vsock.UDSPath != vs {
		t.Errorf("restored config %+v", cfg)
	}
	a.fault("PUT", "/boot-source", `{"kernel_image_path":"x"}`, msgNotSupportedPostBoot)
	a.fault("PUT", "/snapshot/load", loadBody(state, mem, ""), "not allowed")
}

func TestSnapshotLoadPausedThenResume(t *testing.T) {
	state, mem := snapshotOf(t, t.TempDir())
	p := startReady(t)
	a := p.conn()
	a.ok("PUT", "/snapshot/load", loadBody(state, mem, `,"vsock_override":{"uds_path":`+q(filepath.Join(p.dir, "c.sock"))+`}`))
	if got := a.state(); got != statePaused {
		t.Fatalf("after load without resume_vm: %q", got)
	}
	a.ok("PATCH", "/vm", `{"state":"Resumed"}`)
	if got := a.state(); got != stateRunning {
		t.Fatalf("after resume: %q", got)
	}
	if !p.stdout.waitFor("resumed from a snapshot", p.done, 5e9) {
		t.Errorf("console: %s", p.stdout.String())
	}
}

func TestSnapshotLoadRequestFaults(t *testing.T) {
	state, mem := snapshotOf(t, t.TempDir())
	p := startReady(t)
	a := p.conn()
	for _, tc := range []struct{ name, body, want string }{
		{"no snapshot_path", `{"mem_backend":{"backend_type":"File","backend_path":` + q(mem) + `}}`, "snapshot_path"},
		{"no memory", `{"snapshot_path":` + q(state) + `}`, "exactly one of mem_file_path and mem_backend"},
		{"both memories", `{"snapshot_path":` + q(state) + `,"mem_file_path":` + q(mem) + `,"mem_backend":{"backend_type":"File","backend_path":` + q(mem) + `}}`, "exactly one"},
		{"bad backend", loadBody(state, mem, "")[:0] + `{"snapshot_path":` + q(state) + `,"mem_backend":{"backend_type":"Disk","backend_path":"m"}}`, "backend_type"},
		{"unknown field", loadBody(state, mem, `,"resume":true`), "unknown field"},
		{"override without tap", loadBody(state, mem, `,"network_overrides":[{"iface_id":"eth0"}]`), "host_dev_name"},
	} {
		t.Run(tc.name, func(t *testing.T) { a.fault("PUT", "/snapshot/load", tc.body, tc.want) })
	}
	// Rejected requests leave the process fresh: a good load still works.
	a.ok("PUT", "/snapshot/load", loadBody(state, mem, `,"vsock_override":{"uds_path":`+q(filepath.Join(p.dir, "c.sock"))+`}`))
}

func TestSnapshotLoadRefusedAfterConfiguration(t *testing.T) {
	state, mem := snapshotOf(t, t.TempDir())
	for _, tc := range []struct{ name, method, path, body string }{
		{"machine-config", "PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128}`},
		{"boot-source", "PUT", "/boot-source", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startReady(t)
			a := p.conn()
			body := tc.body
			if tc.path == "/boot-source" {
				body = `{"kernel_image_path":` + q(touch(t, p.dir, "vmlinux")) + `}`
			}
			a.ok(tc.method, tc.path, body)
			a.fault("PUT", "/snapshot/load", loadBody(state, mem, ""), "not allowed after configuring boot-specific resources")
			if p.hasExited() {
				t.Error("a refused load ended the process")
			}
		})
	}
}

func TestSnapshotLoadFailureEndsProcess(t *testing.T) {
	state, mem := snapshotOf(t, t.TempDir())
	for _, tc := range []struct{ name, state, mem, extra, want string }{
		{"missing state", state + ".nope", mem, "", "cannot read the microVM state"},
		{"not a state", mem, mem, "", "not a snapshot"},
		{"short memory", state, touch(t, t.TempDir(), "short"), "", "memory file has 0 bytes"},
		{"unknown interface", state, mem, `,"network_overrides":[{"iface_id":"eth9","host_dev_name":"lo"}]`, "no interface"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startReady(t)
			a := p.conn()
			a.fault("PUT", "/snapshot/load", loadBody(tc.state, tc.mem, tc.extra), tc.want)
			if code := p.wait(); code != 1 {
				t.Errorf("exit code %d after a failed load, want 1", code)
			}
		})
	}
}
