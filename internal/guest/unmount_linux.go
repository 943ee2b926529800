package guest

import (
	"bufio"
	"bytes"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of stopEverything's waits for the other processes to end: short,
// as the host escalates a shutdown that takes long (vm.Machine.Shutdown
// sends the VMM SIGTERM at 3/4 of its deadline).
const (
	termGrace = 500 * time.Millisecond
	killGrace = 500 * time.Millisecond
	procPoll  = 10 * time.Millisecond
)

// mountEntry is one line of /proc/self/mountinfo: what unmountPlan needs.
type mountEntry struct {
	id, parent int
	target     string
}

// unmountAction is what releaseFilesystems does to one mount point.
type unmountAction int

const (
	// actUnmount unmounts the file system (falling back to a read-only
	// remount, then a lazy unmount, when it is busy).
	actUnmount unmountAction = iota
	// actRemountRO remounts the file system read-only: the root, which
	// cannot be unmounted.
	actRemountRO
)

func (a unmountAction) String() string {
	if a == actRemountRO {
		return "remount-ro"
	}
	return "unmount"
}

// unmountStep is one step of unmountPlan.
type unmountStep struct {
	target string
	action unmountAction
}

// parseMountinfo reads /proc/self/mountinfo's format: "id parent
// major:minor root mountpoint options ...", the mount point with space, tab,
// newline and backslash octal-escaped. Malformed lines are skipped.
func parseMountinfo(data []byte) []mountEntry {
	var ms []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			continue
		}
		ms = append(ms, mountEntry{id: id, parent: parent, target: unescapeMountPath(f[4])})
	}
	return ms
}

// unescapeMountPath undoes the kernel's \ooo escapes in a mountinfo path.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountPlan orders the mounts for power-off: every mount before the one
// it is mounted on (deepest first; among equals, the later mounted first),
// the root last and only remounted read-only.
func unmountPlan(ms []mountEntry) []unmountStep {
	byID := make(map[int]mountEntry, len(ms))
	for _, m := range ms {
		byID[m.id] = m
	}
	depth := func(m mountEntry) int {
		d := 0
		for seen := map[int]bool{m.id: true}; ; d++ {
			p, ok := byID[m.parent]
			if !ok || seen[p.id] {
				return d
			}
			seen[p.id] = true
			m = p
		}
	}
	type ranked struct {
		step  unmountStep
		depth int
		order int
	}
	rs := make([]ranked, 0, len(ms))
	for i, m := range ms {
		s := unmountStep{target: m.target}
		if m.target == "/" {
			s.action = actRemountRO
		}
		rs = append(rs, ranked{step: s, depth: depth(m), order: i})
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		ar, br := a.step.action == actRemountRO, b.step.action == actRemountRO
		switch {
		case ar != br: // the root (every "/" mount) after the rest
			if ar {
				return 1
			}
			return -1
		case a.depth != b.depth:
			return b.depth - a.depth
		default:
			return b.order - a.order
		}
	})
	steps := make([]unmountStep, len(rs))
	for i, r := range rs {
		steps[i] = r.step
	}
	return steps
}

// releaseFilesystems leaves every file system clean for power-off: it ends
// every other process (SIGTERM, then SIGKILL), unmounts every file system
// in unmountPlan's order (a busy one is remounted read-only and detached),
// remounts the root read-only and syncs. Only the guest's init may call it
// (guestInit.powerOff, after its guards); it checks again, as a read-only
// remount changes the file system itself, in every mount namespace: on a
// host, outside a guest, it only syncs.
func releaseFilesystems(log *slog.Logger) {
	if _, ok := inInitialPIDNamespace(); !ok || os.Getpid() != 1 {
		log.Error("power-off: not the guest's init, not unmounting anything")
		unix.Sync()
		return
	}
	stopEverything(log)
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		log.Warn("power-off: cannot list mounts, only syncing", "err", err)
		unix.Sync()
		return
	}
	for _, s := range unmountPlan(parseMountinfo(data)) {
		if err := applyUnmountStep(s); err != nil {
			log.Debug("power-off: file system left mounted", "target", s.target, "action", s.action, "err", err)
		}
	}
	unix.Sync()
}

// applyUnmountStep does s: unmount, else remount read-only and detach; or
// remount read-only.
func applyUnmountStep(s unmountStep) error {
	if s.action == actUnmount {
		err := unix.Unmount(s.target, 0)
		if err == nil || !errors.Is(err, unix.EBUSY) {
			return err
		}
	}
	roErr := unix.Mount("", s.target, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	if s.action == actRemountRO {
		return roErr
	}
	return errors.Join(roErr, unix.Unmount(s.target, unix.MNT_DETACH))
}

// stopEverything sends SIGTERM to every process but this one (kill(2)
// with pid -1 from PID 1), waits up to termGrace for them to end, then
// SIGKILLs the rest and waits up to killGrace. The agent's reaper reaps
// them.
func stopEverything(log *slog.Logger) {
	for _, step := range []struct {
		sig   unix.Signal
		grace time.Duration
	}{{unix.SIGTERM, termGrace}, {unix.SIGKILL, killGrace}} {
		if err := unix.Kill(-1, step.sig); errors.Is(err, unix.ESRCH) {
			return // nothing else runs
		}
		deadline := time.Now().Add(step.grace)
		for othersRunning() {
			if time.Now().After(deadline) {
				log.Debug("power-off: processes still running", "after", step.sig)
				break
			}
			time.Sleep(procPoll)
		}
		if !othersRunning() {
			return
		}
	}
}

// othersRunning reports whether a process other than this one, kernel
// threads and zombies (which hold no files any more) exists.
func othersRunning() bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if holdsFiles(pid) {
			return true
		}
	}
	return false
}

// pfKthread is the kernel's PF_KTHREAD task flag (field 9 of
// /proc/PID/stat).
const pfKthread = 0x00200000

// holdsFiles reports whether pid is a live user process: not gone, not a
// zombie, not a kernel thread.
func holdsFiles(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false // gone
	}
	return statHoldsFiles(b)
}

// statHoldsFiles is holdsFiles on the contents of /proc/PID/stat.
func statHoldsFiles(b []byte) bool {
	// "pid (comm) state ppid ..." and comm may hold spaces or parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return true
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is the state (field 3), so the flags (field 9) are f[6].
	if len(f) < 7 {
		return true
	}
	if f[0] == "Z" || f[0] == "X" {
		return false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err != nil || flags&pfKthread == 0
}
