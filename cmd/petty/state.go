package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/pettyvm/petty/vm"
)

// Lifecycle states recorded for a detached VM.
const (
	stateStarting = "starting" // the supervisor is booting it
	stateRunning  = "running"
	stateExited   = "exited" // reported by ls for a dead VMM; never stored
)

// record is the state file of a detached VM, <state dir>/<name>.json.
type record struct {
	Name  string `json:"name"`
	ID    string `json:"id,omitempty"`
	State string `json:"state"`
	VMM   vm.VMM `json:"vmm"`
	Accel string `json:"accel,omitempty"`
	// PID is the VMM's process ID (0 while starting); SupervisorPID is the
	// petty process that owns the VM and drains its console.
	PID           int    `json:"pid"`
	SupervisorPID int    `json:"supervisor_pid"`
	RunDir        string `json:"run_dir,omitempty"`
	// VsockPath is Firecracker's hybrid vsock unix socket (CONNECT 1024).
	VsockPath string `json:"vsock_path,omitempty"`
	// APISocket is Firecracker's API socket or QEMU's QMP socket.
	APISocket string `json:"api_socket,omitempty"`
	// AgentSocket is QEMU's virtio-serial agent socket (SerialHandshake).
	AgentSocket string    `json:"agent_socket,omitempty"`
	ConsoleLog  string    `json:"console_log,omitempty"`
	Created     time.Time `json:"created"`
	Spec        spec      `json:"config"`
}

// spec is what the supervisor needs to create the VM: the Config's
// serializable fields and the run's flags.
type spec struct {
	VMM            vm.VMM        `json:"vmm"`
	Accel          string        `json:"accel,omitempty"`
	VCPUs          int           `json:"vcpus"`
	MemoryMiB      int           `json:"memory_mib"`
	Kernel         string        `json:"kernel"`
	Initrd         string        `json:"initrd,omitempty"`
	RootDrive      vm.Drive      `json:"root_drive,omitzero"`
	Drives         []vm.Drive    `json:"drives,omitempty"`
	Network        *vm.Network   `json:"network,omitempty"`
	FirecrackerBin string        `json:"firecracker_bin,omitempty"`
	RunDir         string        `json:"run_dir,omitempty"`
	BootTimeout    time.Duration `json:"boot_timeout"`
	Verbose        bool          `json:"verbose,omitempty"`
}

func specOf(cfg vm.Config, bootTimeout time.Duration, verbose bool) spec {
	return spec{
		VMM: cfg.VMM, Accel: cfg.Accel, VCPUs: cfg.VCPUs, MemoryMiB: cfg.MemoryMiB,
		Kernel: cfg.Kernel, Initrd: cfg.Initrd, RootDrive: cfg.RootDrive, Drives: cfg.Drives,
		Network: cfg.Network, FirecrackerBin: cfg.FirecrackerBin, RunDir: cfg.RunDir,
		BootTimeout: bootTimeout, Verbose: verbose,
	}
}

func (s spec) config() vm.Config {
	return vm.Config{
		VMM: s.VMM, Accel: s.Accel, VCPUs: s.VCPUs, MemoryMiB: s.MemoryMiB,
		Kernel: s.Kernel, Initrd: s.Initrd, RootDrive: s.RootDrive,
		Drives: append([]vm.Drive(nil), s.Drives...), Network: s.Network,
		FirecrackerBin: s.FirecrackerBin, RunDir: s.RunDir, Vsock: &vm.Vsock{},
	}
}

// namePattern is what a VM name may look like (it names a file).
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// errNoSuchVM reports a name without a state file.
var errNoSuchVM = errors.New("no such VM")

// stateDir is where detached VMs are recorded: the flag, else /run/petty/vms
// for root, $XDG_RUNTIME_DIR/petty/vms, or /tmp/petty-<uid>/vms.
func (a *app) stateDirPath() string {
	switch {
	case a.stateDir != "":
		return a.stateDir
	case os.Geteuid() == 0:
		return "/run/petty/vms"
	case os.Getenv("XDG_RUNTIME_DIR") != "":
		return filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "petty", "vms")
	}
	return fmt.Sprintf("/tmp/petty-%d/vms", os.Geteuid())
}

func (a *app) recordPath(name string) string {
	return filepath.Join(a.stateDirPath(), name+".json")
}

// reserve creates the state file of a new VM, failing if the name is taken.
func (a *app) reserve(r *record) error {
	if err := os.MkdirAll(a.stateDirPath(), 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(a.recordPath(r.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("a VM named %q already exists (petty ls; petty rm %s)", r.Name, r.Name)
	}
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	return errors.Join(err, f.Close())
}

// save replaces the state file of r atomically.
func (a *app) save(r *record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(a.stateDirPath(), "."+r.Name+".*.tmp")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), a.recordPath(r.Name)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// load reads the state file of the VM called name.
func (a *app) load(name string) (*record, error) {
	if !namePattern.MatchString(name) {
		return nil, usagef("bad VM name %q", name)
	}
	data, err := os.ReadFile(a.recordPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w %q (petty ls lists them)", errNoSuchVM, name)
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("state file %s: %w", a.recordPath(name), err)
	}
	return &r, nil
}

// list loads every state file, sorted by name.
func (a *app) list() ([]*record, error) {
	entries, err := os.ReadDir(a.stateDirPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rs []*record
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, err := a.load(name)
		if err != nil {
			continue // removed meanwhile, or not ours
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	return rs, nil
}

// forget removes the state file of r.
func (a *app) forget(r *record) error {
	if err := os.Remove(a.recordPath(r.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
