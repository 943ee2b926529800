package vm

import (
	"errors"
	"net"
	"testing"
)

func TestCheckMAC(t *testing.T) {
	tests := []struct {
		mac string
		ok  bool
	}{
		{"06:00:ac:10:00:02", true},
		{"06:00:AC:10:00:02", true},
		{"52:54:00:12:34:56", true},
		{"0600.ac10.0002", false},          // net.ParseMAC accepts it
		{"06-00-ac-10-00-02", false},       // net.ParseMAC accepts it
		{"01:00:5e:00:00:01", false},       // multicast
		{"ff:ff:ff:ff:ff:ff", false},       // broadcast
		{"00:00:00:00:00:00", false},       // zero
		{"06:00:ac:10:00", false},          // 5 bytes
		{"06:00:ac:10:00:02:03:04", false}, // EUI-64
		{"6:0:ac:10:0:2", false},
		{"06:00:ac:10:00:0g", false},
		{" 06:00:ac:10:00:02", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.mac, func(t *testing.T) {
			err := checkMAC(tt.mac)
			if (err == nil) != tt.ok {
				t.Errorf("checkMAC(%q) = %v, want ok=%v", tt.mac, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errBadMAC) {
				t.Errorf("checkMAC(%q) = %v, does not wrap errBadMAC", tt.mac, err)
			}
		})
	}
}

func TestNewMAC(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s := newMAC()
		if err := checkMAC(s); err != nil {
			t.Fatalf("newMAC() = %q: %v", s, err)
		}
		hw, _ := net.ParseMAC(s)
		if hw[0]&0x02 == 0 || hw[0]&0x01 != 0 {
			t.Fatalf("newMAC() = %q: not a locally administered unicast address", s)
		}
		if seen[s] {
			t.Fatalf("newMAC() repeated %q", s)
		}
		seen[s] = true
	}
}

// TestMachinesGetDistinctMACs checks that two VMs on a network get
// different MACs, and that an explicit MAC is kept.
func TestMachinesGetDistinctMACs(t *testing.T) {
	cfg := validConfig(t)
	cfg.Network = &Network{Tap: "lo"} // exists in every network namespace
	m1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mac1, mac2 := m1.Config().Network.MAC, m2.Config().Network.MAC
	if mac1 == "" || mac1 == mac2 {
		t.Errorf("MACs %q and %q, want two different ones", mac1, mac2)
	}
	if cfg.Network.MAC != "" {
		t.Error("New wrote the MAC into the caller's Config")
	}
	cfg.Network.MAC = "06:00:ac:10:00:02"
	m3, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := m3.Config().Network.MAC; got != cfg.Network.MAC {
		t.Errorf("explicit MAC became %q", got)
	}
	spec := qemuSpec(m1.ID(), &m1.cfg, m1.RunDir(), qemuHost{})
	if spec.Net == nil || spec.Net.MAC != mac1 {
		t.Errorf("QEMU gets MAC %+v, want %q", spec.Net, mac1)
	}
	if fc := firecrackerConfig(&m2.cfg); fc.NetworkInterfaces[0].GuestMac != mac2 {
		t.Errorf("Firecracker gets MAC %q, want %q", fc.NetworkInterfaces[0].GuestMac, mac2)
	}
}
