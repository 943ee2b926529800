package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Snapshots, with Firecracker's rules (docs/snapshotting/snapshot-support.md):
//
//   - PUT /snapshot/create is post-boot only and needs a paused microVM. It
//     writes the state file (here: JSON of the configuration, behind a magic
//     line) and the memory file (a sparse file of the guest's memory size).
//   - PUT /snapshot/load is accepted only by a fresh process: before any
//     resource other than the logger and metrics is configured, and before
//     the boot. Exactly one of mem_file_path and mem_backend is given. A load
//     that fails after the checks of the request ends the process, as the
//     VMM's state is then undefined: Firecracker answers 400 and exits.
//   - After a load the microVM is paused, or running with resume_vm; the
//     vsock device listens on vsock_override's uds_path, and
//     network_overrides change taps of the snapshot's interfaces. The fake
//     guest (FAKEFC_GUEST_CMD) starts again when the microVM first runs.

// stateMagic starts a fake snapshot's state file.
const stateMagic = "fakefirecracker-snapshot-v1\n"

type snapshotCreateParams struct {
	MemFilePath  *string `json:"mem_file_path"`
	SnapshotPath *string `json:"snapshot_path"`
	SnapshotType *string `json:"snapshot_type,omitempty"`
}

type memoryBackend struct {
	BackendType *string `json:"backend_type"`
	BackendPath *string `json:"backend_path"`
}

type networkOverride struct {
	IfaceID     *string `json:"iface_id"`
	HostDevName *string `json:"host_dev_name"`
}

type vsockOverride struct {
	UDSPath *string `json:"uds_path"`
}

type snapshotLoadParams struct {
	EnableDiffSnapshots *bool             `json:"enable_diff_snapshots,omitempty"`
	TrackDirtyPages     *bool             `json:"track_dirty_pages,omitempty"`
	MemFilePath         *string           `json:"mem_file_path,omitempty"`
	MemBackend          *memoryBackend    `json:"mem_backend,omitempty"`
	SnapshotPath        *string           `json:"snapshot_path"`
	ResumeVM            *bool             `json:"resume_vm,omitempty"`
	NetworkOverrides    []networkOverride `json:"network_overrides,omitempty"`
	VsockOverride       *vsockOverride    `json:"vsock_override,omitempty"`
	ClockRealtime       *bool             `json:"clock_realtime,omitempty"`
}

// snapshotState is the fake's microVM state file.
type snapshotState struct {
	Machine    machineConfig       `json:"machine"`
	Boot       *bootSource         `json:"boot"`
	Drives     []*drive            `json:"drives"`
	Ifaces     []*networkInterface `json:"ifaces"`
	Vsock      *vsockConfig        `json:"vsock"`
	CreatedUTC time.Time           `json:"created"`
}

func (v *vmm) createSnapshotLocked(in *snapshotCreateParams) error {
	if err := require(field("mem_file_path", in.MemFilePath), field("snapshot_path", in.SnapshotPath)); err != nil {
		return err
	}
	if err := checkEnum("snapshot_type", in.SnapshotType, "Full", "Diff"); err != nil {
		return err
	}
	if err := v.requirePostBoot(); err != nil {
		return err
	}
	if v.state != statePaused {
		return faultf("Cannot create snapshot: the microVM is not paused. Pause it first (PATCH /vm).")
	}
	if in.SnapshotType != nil && *in.SnapshotType == "Diff" && !*v.machine.TrackDirtyPages {
		return faultf("Cannot create a diff snapshot: dirty page tracking is not enabled (track_dirty_pages).")
	}
	st := snapshotState{Machine: v.machine, Boot: v.boot, Drives: v.drives, Ifaces: v.ifaces, CreatedUTC: time.Now().UTC()}
	if v.vsock != nil {
		c := v.vsock.cfg
		st.Vsock = &c
	}
	data, err := json.Marshal(st)
	if err != nil {
		return faultf("Cannot save the microVM state: %v", err)
	}
	if err := os.WriteFile(*in.SnapshotPath, append([]byte(stateMagic), data...), 0o600); err != nil {
		return faultf("Cannot save the microVM state: %v", err)
	}
	mem, err := os.OpenFile(*in.MemFilePath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return faultf("Cannot save the guest memory: %v", err)
	}
	defer mem.Close()
	// A few pages of "guest memory", then holes up to the memory size.
	if _, err := fmt.Fprintf(mem, "fake guest memory of %s\n", v.opts.id); err != nil {
		return faultf("Cannot save the guest memory: %v", err)
	}
	if err := mem.Truncate(int64(*v.machine.MemSizeMib) << 20); err != nil {
		return faultf("Cannot save the guest memory: %v", err)
	}
	if v.logger != nil {
		v.logger.info("Snapshot created")
	}
	return nil
}

// configuredLocked reports whether a boot-specific resource was configured
// (everything but the logger and metrics), which rules out a snapshot load.
func (v *vmm) configuredLocked() bool {
	return v.machineSet || v.boot != nil || len(v.drives) > 0 || len(v.ifaces) > 0 || v.vsock != nil
}

func (v *vmm) loadSnapshotLocked(in *snapshotLoadParams) error {
	if err := require(field("snapshot_path", in.SnapshotPath)); err != nil {
		return err
	}
	if (in.MemFilePath == nil) == (in.MemBackend == nil) {
		return faultf("Invalid snapshot load request: exactly one of mem_file_path and mem_backend must be given.")
	}
	memPath := in.MemFilePath
	if b := in.MemBackend; b != nil {
		if err := require(field("backend_path", b.BackendPath), field("backend_type", b.BackendType)); err != nil {
			return err
		}
		if err := checkEnum("backend_type", b.BackendType, "File", "Uffd"); err != nil {
			return err
		}
		if *b.BackendType == "Uffd" {
			return faultf("fake firecracker: the Uffd memory backend is not implemented by this fake")
		}
		memPath = b.BackendPath
	}
	for _, o := range in.NetworkOverrides {
		if err := require(field("host_dev_name", o.HostDevName), field("iface_id", o.IfaceID)); err != nil {
			return err
		}
	}
	if o := in.VsockOverride; o != nil {
		if err := require(field("uds_path", o.UDSPath)); err != nil {
			return err
		}
	}
	if v.started() || v.configuredLocked() {
		return faultf("Loading a microVM snapshot not allowed after configuring boot-specific resources.")
	}
	// From here on a failure is fatal, as in Firecracker.
	if err := v.restoreLocked(in, *memPath); err != nil {
		time.AfterFunc(10*time.Millisecond, func() {
			fmt.Fprintf(os.Stderr, "fake: snapshot load failed, exiting: %v\n", err)
			exit(1)
		})
		return faultf("Load snapshot error: %v. The microVM cannot continue; Firecracker exits.", err)
	}
	if in.ResumeVM != nil && *in.ResumeVM {
		return v.runRestoredLocked()
	}
	return nil
}

// restoreLocked rebuilds the microVM from a state file, paused.
func (v *vmm) restoreLocked(in *snapshotLoadParams, memPath string) error {
	data, err := os.ReadFile(*in.SnapshotPath)
	if err != nil {
		return fmt.Errorf("cannot read the microVM state: %w", err)
	}
	rest, ok := cutPrefix(data, stateMagic)
	if !ok {
		return fmt.Errorf("the microVM state file %s is not a snapshot", *in.SnapshotPath)
	}
	var st snapshotState
	if err := json.Unmarshal(rest, &st); err != nil {
		return fmt.Errorf("cannot deserialize the microVM state: %w", err)
	}
	if st.Machine.MemSizeMib == nil || st.Boot == nil {
		return fmt.Errorf("the microVM state is incomplete")
	}
	mem, err := os.Stat(memPath)
	if err != nil {
		return fmt.Errorf("cannot open the memory file: %w", err)
	}
	if want := int64(*st.Machine.MemSizeMib) << 20; mem.Size() != want {
		return fmt.Errorf("the memory file has %d bytes, the microVM %d", mem.Size(), want)
	}
	for _, d := range st.Drives {
		flag := os.O_RDWR
		if *d.IsReadOnly {
			flag = os.O_RDONLY
		}
		if err := openCheck(*d.PathOnHost, flag); err != nil {
			return fmt.Errorf("cannot open the block device %s: %w", *d.DriveID, err)
		}
	}
	for _, o := range in.NetworkOverrides {
		found := false
		for _, n := range st.Ifaces {
			if *n.IfaceID == *o.IfaceID {
				n.HostDevName, found = o.HostDevName, true
			}
		}
		if !found {
			return fmt.Errorf("network override: the snapshot has no interface %q", *o.IfaceID)
		}
	}
	for _, n := range st.Ifaces {
		if _, err := os.Stat("/sys/class/net/" + *n.HostDevName); err != nil {
			return fmt.Errorf("cannot open the tap device %s: %w", *n.HostDevName, err)
		}
	}
	if st.Vsock == nil && in.VsockOverride != nil {
		return fmt.Errorf("vsock override: the snapshot has no vsock device")
	}
	if st.Vsock != nil {
		cfg := *st.Vsock
		if in.VsockOverride != nil {
			cfg.UDSPath = in.VsockOverride.UDSPath
		}
		dev, err := newVsockDevice(v, cfg)
		if err != nil {
			return err
		}
		v.vsock = dev
	}
	v.machine, v.boot, v.drives, v.ifaces = st.Machine, st.Boot, st.Drives, st.Ifaces
	v.state = statePaused
	if v.logger != nil {
		v.logger.info("Snapshot loaded")
	}
	return nil
}

// runRestoredLocked runs a restored microVM: the fake guest starts again
// (the first time) and vsock connections go through.
func (v *vmm) runRestoredLocked() error {
	if !v.guestStarted {
		if err := v.startGuestLocked(); err != nil {
			return err
		}
	}
	fmt.Fprint(os.Stdout, "[    0.000000] fake guest: resumed from a snapshot\n")
	v.state = stateRunning
	signalGuest(sigCont)
	v.gate.open()
	return nil
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return nil, false
	}
	return b[len(prefix):], true
}
