package vm

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestReadOwnerRecord feeds readOwnerRecord planted records.
func TestReadOwnerRecord(t *testing.T) {
	const id = "0123456789abcdef"
	good := ownerRecord{
		Version: 1, ID: id, VMM: QEMU, VMMPID: 42, VMMStart: 7, OwnerPID: 43, OwnerStart: 8,
		APISocket: "qmp.sock", AgentSocket: "agent.sock",
	}
	tests := []struct {
		name string
		edit func(r *ownerRecord)
		raw  string // used instead of r when set
		mode os.FileMode
		ok   bool
	}{
		{name: "good", edit: func(*ownerRecord) {}, ok: true},
		{name: "socket outside the run dir", edit: func(r *ownerRecord) { r.AgentSocket = "../../victim.sock" }},
		{name: "absolute socket", edit: func(r *ownerRecord) { r.APISocket = "/tmp/x.sock" }},
		{name: "socket in a subdir", edit: func(r *ownerRecord) { r.VsockSocket = "a/b" }},
		{name: "other id", edit: func(r *ownerRecord) { r.ID = "fedcba9876543210" }},
		{name: "bad version", edit: func(r *ownerRecord) { r.Version = 2 }},
		{name: "unknown vmm", edit: func(r *ownerRecord) { r.VMM = "bhyve" }},
		{name: "no pid", edit: func(r *ownerRecord) { r.VMMPID = 0 }},
		{name: "no start time", edit: func(r *ownerRecord) { r.OwnerStart = 0 }},
		{name: "unknown field", raw: `{"version":1,"id":"` + id + `","vmm":"qemu","vmm_pid":1,"vmm_start":1,"owner_pid":1,"owner_start":1,"api_socket":"q","exec":"/bin/sh"}`},
		{name: "not json", raw: "garbage"},
		{name: "trailing data", raw: `{"version":1} {}`},
		{name: "readable by others", edit: func(*ownerRecord) {}, mode: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), id)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			data := []byte(tt.raw)
			if tt.raw == "" {
				r := good
				tt.edit(&r)
				data, _ = json.Marshal(r)
			}
			mode := tt.mode
			if mode == 0 {
				mode = 0o600
			}
			path := filepath.Join(dir, ownerRecordName)
			if err := os.WriteFile(path, data, mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, mode)
			_, err := readOwnerRecord(dir)
			if tt.ok && err != nil {
				t.Fatalf("readOwnerRecord = %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrBadOwnerRecord) {
				t.Fatalf("readOwnerRecord = %v, want ErrBadOwnerRecord", err)
			}
		})
	}
	t.Run("symlink", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), id)
		os.Mkdir(dir, 0o700)
		target := filepath.Join(t.TempDir(), "elsewhere.json")
		data, _ := json.Marshal(good)
		os.WriteFile(target, data, 0o600)
		os.Symlink(target, filepath.Join(dir, ownerRecordName))
		if _, err := readOwnerRecord(dir); !errors.Is(err, ErrBadOwnerRecord) {
			t.Fatalf("readOwnerRecord = %v, want ErrBadOwnerRecord", err)
		}
	})
}
