package vm

import (
	"errors"
	"testing"
	"time"
)

func TestSelectVMM(t *testing.T) {
	t.Setenv(FirecrackerBinEnv, "")
	t.Setenv("PATH", t.TempDir()) // no firecracker in $PATH
	kvm, _ := SelectVMM(QEMU, "")
	accel := "tcg"
	if kvm.KVM {
		accel = "kvm"
	}
	tests := []struct {
		name      string
		want      VMM
		bin       string
		wantVMM   VMM
		wantAccel string
		wantErr   error
	}{
		{"firecracker missing", Firecracker, "/nonexistent/firecracker", "", "", ErrNoFirecracker},
		{"firecracker not in PATH", Firecracker, "", "", "", ErrNoFirecracker},
		{"firecracker found", Firecracker, "/bin/true", Firecracker, "", nil},
		{"qemu", QEMU, "", QEMU, accel, nil},
		{"auto without firecracker", AutoVMM, "", QEMU, accel, nil},
		{"empty is auto", "", "/nonexistent/firecracker", QEMU, accel, nil},
		{"unknown", "bochs", "", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			began := time.Now()
			s, err := SelectVMM(tt.want, tt.bin)
			if d := time.Since(began); d > 500*time.Millisecond {
				t.Errorf("SelectVMM took %v", d)
			}
			if tt.name == "unknown" {
				if err == nil {
					t.Errorf("SelectVMM(%q) = %+v, want an error", tt.want, s)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SelectVMM(%q, %q) error = %v, want %v", tt.want, tt.bin, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if s.VMM != tt.wantVMM || s.Accel != tt.wantAccel || s.Reason == "" {
				t.Errorf("SelectVMM(%q, %q) = %+v, want %s/%q with a reason", tt.want, tt.bin, s, tt.wantVMM, tt.wantAccel)
			}
		})
	}
}
