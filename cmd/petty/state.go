package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/internal/privdir"
	"github.com/pettyvm/petty/vm"
)

// Lifecycle states of a detached VM. Only starting and running are stored;
// petty ls derives the others.
const (
	stateStarting = "starting" // the supervisor is booting it
	stateRunning  = "running"
	stateExited   = "exited"  // its VMM is gone
	stateCorrupt  = "corrupt" // its record failed validation (petty rm NAME removes it)
)

// maxRecordSize bounds a state record.
const maxRecordSize = 64 << 10

// record is the state file of a detached VM, <state dir>/<name>.json. It is
// data, never instructions: it holds only what petty ls shows and the run
// directory, load validates every field, and petty acts on a run directory
// only when it is <run root>/<ID> (see attachable). How to create the VM
// reaches the supervisor through a pipe (spec), not through this file.
type record struct {
	Name  string `json:"name"`
	ID    string `json:"id,omitempty"`
	State string `json:"state"`
	VMM   vm.VMM `json:"vmm"`
	// PID is the VMM's process ID (0 while starting).
	PID int `json:"pid"`
	// SupervisorPID and SupervisorStart identify the petty __supervise
	// process that boots and owns the VM, so that petty rm can cancel a VM
	// that is still starting; both are verified before any signal.
	SupervisorPID   int       `json:"supervisor_pid,omitempty"`
	SupervisorStart uint64    `json:"supervisor_start,omitempty"`
	RunDir          string    `json:"run_dir,omitempty"`
	Created         time.Time `json:"created"`

	// corrupt says why the record failed validation; only Name is valid then.
	corrupt error
}

// namePattern is what a VM name may look like (it names a file).
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// errNoSuchVM reports a name without a state file.
var errNoSuchVM = errors.New("no such VM")

// errCorrupt is wrapped by the errors about a corrupt record.
var errCorrupt = errors.New("corrupt state record")

// stateDirPath is where detached VMs are recorded: the flag, else
// /run/petty/vms for root, $XDG_RUNTIME_DIR/petty/vms, or
// /tmp/petty-<uid>/vms. ensureStateDir verifies it before use.
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

// ensureStateDir creates the state directory (0700) and checks it, and the
// petty directory above it when petty chose the path: a directory of ours,
// private, not a symlink. With create false a missing directory is left
// missing and reported as os.ErrNotExist.
func (a *app) ensureStateDir(create bool) error {
	dir := a.stateDirPath()
	dirs := []string{dir}
	if a.stateDir == "" {
		dirs = []string{filepath.Dir(dir), dir} // .../petty or /tmp/petty-<uid>
	}
	for _, d := range dirs {
		var err error
		if create {
			err = privdir.Ensure(d)
		} else {
			err = privdir.Check(d)
		}
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return err
			}
			return fmt.Errorf("state directory: %w", err)
		}
	}
	return nil
}

func (a *app) recordPath(name string) string {
	return filepath.Join(a.stateDirPath(), name+".json")
}

// reserve creates the state file of a new VM, failing if the name is taken.
func (a *app) reserve(r *record) error {
	if err := a.ensureStateDir(true); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(a.recordPath(r.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
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
	if err := a.ensureStateDir(false); err != nil {
		return err
	}
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

// load reads the state file of the VM called name. A file that exists but
// fails validation gives a record whose corrupt field says why.
func (a *app) load(name string) (*record, error) {
	if !namePattern.MatchString(name) {
		return nil, usagef("bad VM name %q", name)
	}
	if err := a.ensureStateDir(false); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w %q (petty ls lists them)", errNoSuchVM, name)
		}
		return nil, err
	}
	data, err := readPrivateFile(a.recordPath(name), maxRecordSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w %q (petty ls lists them)", errNoSuchVM, name)
	}
	if err != nil {
		return &record{Name: name, corrupt: err}, nil
	}
	var r record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return &record{Name: name, corrupt: err}, nil
	}
	if dec.More() {
		return &record{Name: name, corrupt: errors.New("trailing data")}, nil
	}
	if err := r.validate(name); err != nil {
		return &record{Name: name, corrupt: err}, nil
	}
	return &r, nil
}

// validate checks every field of a decoded record.
func (r *record) validate(name string) error {
	switch {
	case r.Name != name:
		return fmt.Errorf("name %q in the file of %q", r.Name, name)
	case r.State != stateStarting && r.State != stateRunning:
		return fmt.Errorf("state %q", r.State)
	case r.VMM != vm.Firecracker && r.VMM != vm.QEMU:
		return fmt.Errorf("vmm %q", r.VMM)
	case r.ID != "" && !vm.IsID(r.ID):
		return fmt.Errorf("id %q", r.ID)
	case r.PID < 0 || r.SupervisorPID < 0:
		return errors.New("negative pid")
	case r.Created.IsZero():
		return errors.New("no creation time")
	case r.State == stateRunning && (r.ID == "" || r.RunDir == ""):
		return errors.New("running without an id and run directory")
	case r.RunDir != "" && (r.ID == "" || !filepath.IsAbs(r.RunDir) || filepath.Clean(r.RunDir) != r.RunDir || filepath.Base(r.RunDir) != r.ID):
		return fmt.Errorf("run directory %q is not that of VM %q", r.RunDir, r.ID)
	}
	return nil
}

// readPrivateFile reads path, at most limit bytes, if it is a regular file
// (never through a symlink) owned by us with no access for others.
func readPrivateFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, errors.New("is a symbolic link")
		}
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, errors.New("not a regular file")
	case int(st.Uid) != os.Geteuid():
		return nil, fmt.Errorf("owned by uid %d", st.Uid)
	case st.Mode&0o077 != 0:
		return nil, fmt.Errorf("mode %04o gives access to other users", st.Mode&0o777)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// list loads every state file, sorted by name; corrupt ones included.
func (a *app) list() ([]*record, error) {
	if err := a.ensureStateDir(false); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	entries, err := os.ReadDir(a.stateDirPath())
	if err != nil {
		return nil, err
	}
	var rs []*record
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") || !namePattern.MatchString(name) {
			continue
		}
		r, err := a.load(name)
		if err != nil {
			continue // removed meanwhile
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	return rs, nil
}

// forget removes the state file of r (only that file: a symlink is
// removed, not followed).
func (a *app) forget(r *record) error {
	if err := os.Remove(a.recordPath(r.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// runRoot is the root of the VMs' run directories.
func (a *app) runRoot() string { return vm.RunRoot(a.runDir) }

// attachable returns r's run directory if petty may act on it: exactly
// <run root>/<r.ID>. Anything else a record names is left alone.
func (a *app) attachable(r *record) (string, error) {
	if r.corrupt != nil {
		return "", fmt.Errorf("%w: %v (petty rm %s removes it)", errCorrupt, r.corrupt, r.Name)
	}
	if r.RunDir == "" {
		return "", nil
	}
	want := filepath.Join(a.runRoot(), r.ID)
	if !vm.IsID(r.ID) || r.RunDir != want {
		return "", fmt.Errorf("VM %s: run directory %s is not %s (another --run-dir?); not touching it", r.Name, r.RunDir, want)
	}
	return want, nil
}

// reclaim frees the run directories of VMs whose owner died (a petty run
// killed with SIGKILL, say). Failures are logged, not fatal.
func (a *app) reclaim() {
	dirs, err := vm.Reclaim(a.runRoot())
	for _, d := range dirs {
		a.logger().Debug("reclaimed the run directory of a dead owner", "dir", d)
	}
	if err != nil {
		a.logger().Warn("reclaiming run directories", "err", err)
	}
}
