package firecracker_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pettyvm/petty/firecracker"
)

func TestConfigJSON(t *testing.T) {
	tests := []struct {
		name string
		cfg  firecracker.Config
		want string
	}{
		{
			name: "minimal",
			cfg: firecracker.Config{
				BootSource:    firecracker.BootSource{KernelImagePath: "/k"},
				MachineConfig: firecracker.MachineConfiguration{VcpuCount: 1, MemSizeMib: 128},
			},
			want: `{"boot-source":{"kernel_image_path":"/k"},"drives":[],"machine-config":{"vcpu_count":1,"mem_size_mib":128}}`,
		},
		{
			name: "full",
			cfg: firecracker.Config{
				BootSource:        firecracker.BootSource{KernelImagePath: "/k", BootArgs: "console=ttyS0", InitrdPath: "/i"},
				Drives:            []firecracker.Drive{{DriveID: "rootfs", PathOnHost: "/r", IsRootDevice: true, IsReadOnly: ptr(true)}},
				MachineConfig:     firecracker.MachineConfiguration{VcpuCount: 2, MemSizeMib: 512, Smt: ptr(false)},
				NetworkInterfaces: []firecracker.NetworkInterface{{IfaceID: "eth0", HostDevName: "tap0"}},
				Vsock:             &firecracker.Vsock{GuestCID: 3, UdsPath: "/v.sock"},
				Logger:            &firecracker.Logger{LogPath: "/log", Level: firecracker.LogLevelWarning},
			},
			want: `{"boot-source":{"kernel_image_path":"/k","boot_args":"console=ttyS0","initrd_path":"/i"},` +
				`"drives":[{"drive_id":"rootfs","path_on_host":"/r","is_root_device":true,"is_read_only":true}],` +
				`"machine-config":{"vcpu_count":2,"mem_size_mib":512,"smt":false},` +
				`"network-interfaces":[{"iface_id":"eth0","host_dev_name":"tap0"}],` +
				`"vsock":{"guest_cid":3,"uds_path":"/v.sock"},` +
				`"logger":{"log_path":"/log","level":"Warning"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tt.want {
				t.Errorf("Marshal:\n got %s\nwant %s", got, tt.want)
			}
			if got, _ := json.Marshal(&tt.cfg); string(got) != tt.want {
				t.Errorf("Marshal(&cfg):\n got %s\nwant %s", got, tt.want)
			}
			var back firecracker.Config
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.cfg, back, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}
