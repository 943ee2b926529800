package vm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/internal/pidfd"
)

// ownerRecordName is the owner record's name in a VM's run directory.
const ownerRecordName = "machine.json"

// ownerRecordVersion is the owner record's format version.
const ownerRecordVersion = 1

// maxOwnerRecord bounds the owner record read by Attach and Reclaim.
const maxOwnerRecord = 16 << 10

// ownerRecord says who owns the VM of a run directory, so that another
// process can attach to it (Attach) or reclaim it once its owner is dead
// (Reclaim). The Machine writes it at Start; readers treat it as untrusted
// data (readOwnerRecord validates every field).
type ownerRecord struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	VMM     VMM    `json:"vmm"`
	// VMMPID and VMMStart identify the VMM process (start time as in
	// /proc/PID/stat, so that a recycled PID is never mistaken for it).
	VMMPID   int    `json:"vmm_pid"`
	VMMStart uint64 `json:"vmm_start"`
	// OwnerPID and OwnerStart identify the process that owns the Machine.
	OwnerPID   int    `json:"owner_pid"`
	OwnerStart uint64 `json:"owner_start"`
	// Socket names, relative to the run directory.
	APISocket   string `json:"api_socket"`             // Firecracker API or QMP
	AgentSocket string `json:"agent_socket,omitempty"` // QEMU virtio-serial agent port
	VsockSocket string `json:"vsock_socket,omitempty"` // Firecracker hybrid vsock
	// VsockCID is the guest CID of QEMU's vhost-vsock device (0: none).
	VsockCID uint32 `json:"vsock_cid,omitempty"`
}

// idPattern is what New's IDs look like (newID).
var idPattern = regexp.MustCompile(fmt.Sprintf(`^[0-9a-f]{%d}$`, idLen))

// IsID reports whether s has the form of a Machine ID, as the name of a run
// directory under the run root has.
func IsID(s string) bool { return idPattern.MatchString(s) }

// writeOwnerRecord records that this process owns the Machine whose VMM p
// was just spawned by backend be. Called by Start.
func (m *Machine) writeOwnerRecord(be backend, p *process) error {
	self, err := pidfd.StartTime(os.Getpid())
	if err != nil {
		return fmt.Errorf("owner record: %w", err)
	}
	vmmStart, err := pidfd.StartTime(p.pid())
	if err != nil {
		return fmt.Errorf("owner record: vmm: %w", err)
	}
	r := ownerRecord{
		Version: ownerRecordVersion, ID: m.id, VMM: m.cfg.VMM,
		VMMPID: p.pid(), VMMStart: vmmStart, OwnerPID: os.Getpid(), OwnerStart: self,
	}
	rel := func(path string) string {
		if path == "" {
			return ""
		}
		if r, err := filepath.Rel(m.runDir, path); err == nil && filepath.IsLocal(r) {
			return r
		}
		return "" // outside the run directory: not attachable
	}
	switch b := be.(type) {
	case *qemuBackend:
		r.APISocket, r.AgentSocket, r.VsockCID = rel(b.spec.QMPSocket), rel(b.spec.AgentSocket), b.spec.VsockCID
	case *firecrackerBackend:
		r.APISocket, r.VsockSocket = rel(b.apiSock), rel(b.vsock)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(m.runDir, ownerRecordName), data)
}

// writeFileAtomic writes data to path (0600) through a temporary file in
// its directory and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	_ = removeIfExists(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// ErrBadOwnerRecord is wrapped by the errors of Attach and Reclaim about a
// run directory whose owner record is missing, unsafe or malformed.
var ErrBadOwnerRecord = errors.New("bad owner record")

func badRecord(runDir, format string, args ...any) error {
	return fmt.Errorf("%w in %s: %s", ErrBadOwnerRecord, runDir, fmt.Sprintf(format, args...))
}

// readOwnerRecord reads and validates the owner record of runDir, an
// absolute clean path already checked to be a private directory of ours.
// The file must be a regular file (never a symlink) owned by us and private;
// every field must be well-formed and every socket name must lie inside the
// run directory.
func readOwnerRecord(runDir string) (*ownerRecord, error) {
	path := filepath.Join(runDir, ownerRecordName)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrBadOwnerRecord, err)
		}
		return nil, badRecord(runDir, "%v", err) // ELOOP for a symlink
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, badRecord(runDir, "%v", err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, badRecord(runDir, "not a regular file")
	case int(st.Uid) != os.Geteuid():
		return nil, badRecord(runDir, "owned by uid %d", st.Uid)
	case st.Mode&0o077 != 0:
		return nil, badRecord(runDir, "mode %04o gives access to other users", st.Mode&0o777)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxOwnerRecord+1))
	if err != nil {
		return nil, badRecord(runDir, "%v", err)
	}
	if len(data) > maxOwnerRecord {
		return nil, badRecord(runDir, "larger than %d bytes", maxOwnerRecord)
	}
	var r ownerRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, badRecord(runDir, "%v", err)
	}
	if dec.More() {
		return nil, badRecord(runDir, "trailing data")
	}
	if err := r.validate(runDir); err != nil {
		return nil, badRecord(runDir, "%v", err)
	}
	return &r, nil
}

func (r *ownerRecord) validate(runDir string) error {
	switch {
	case r.Version != ownerRecordVersion:
		return fmt.Errorf("version %d, want %d", r.Version, ownerRecordVersion)
	case !IsID(r.ID) || r.ID != filepath.Base(runDir):
		return fmt.Errorf("id %q does not name the run directory", r.ID)
	case r.VMM != Firecracker && r.VMM != QEMU:
		return fmt.Errorf("unknown vmm %q", r.VMM)
	case r.VMMPID <= 0 || r.OwnerPID <= 0 || r.VMMStart == 0 || r.OwnerStart == 0:
		return errors.New("missing process identity")
	case r.APISocket == "":
		return errors.New("no api socket")
	}
	for _, s := range []string{r.APISocket, r.AgentSocket, r.VsockSocket} {
		if s != "" && (!filepath.IsLocal(s) || filepath.Base(s) != s) {
			return fmt.Errorf("socket %q is not a name inside the run directory", s)
		}
	}
	return nil
}

// path returns the absolute path of the socket name s in runDir ("" stays "").
func (r *ownerRecord) path(runDir, s string) string {
	if s == "" {
		return ""
	}
	return filepath.Join(runDir, s)
}

// openVMM returns the record's VMM process if it still runs: same PID and
// start time, and a command line naming runDir. Nil when it is gone.
func (r *ownerRecord) openVMM(runDir string) (*pidfd.Process, error) {
	return pidfd.Open(r.VMMPID, r.VMMStart, runDir+string(filepath.Separator))
}

// ownerAlive reports whether the record's owner process still runs.
func (r *ownerRecord) ownerAlive() (bool, error) {
	p, err := pidfd.Open(r.OwnerPID, r.OwnerStart)
	if err != nil || p == nil {
		return false, err
	}
	p.Close()
	return true, nil
}
