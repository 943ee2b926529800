package guest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/agent/agentpb"
)

// openPTY opens a new pseudo-terminal pair: the master (which the agent
// keeps) and the slave (the command's controlling terminal).
func openPTY() (master, slave *os.File, retErr error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("exec: tty: %w", err)
	}
	defer func() {
		if retErr != nil {
			m.Close()
		}
	}()
	rc, err := m.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
	}); err != nil {
		return nil, nil, err
	}
	if ioErr != nil {
		return nil, nil, fmt.Errorf("exec: tty: %w", ioErr)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("exec: tty: %w", err)
	}
	return m, s, nil
}

// newTTYPipes gives cmd a new terminal as stdin, stdout and stderr and as its
// controlling terminal (a new session). The agent reads the terminal's
// output as stdout; stderr is an empty pipe. With stdin, writes go to the
// terminal.
func newTTYPipes(cmd *exec.Cmd, stdin bool) (_ *execPipes, retErr error) {
	p := &execPipes{}
	defer func() {
		if retErr != nil {
			p.closeChild()
			p.closeParent()
		}
	}()
	m, s, err := openPTY()
	if err != nil {
		return nil, err
	}
	p.tty, p.stdoutR, p.stdoutW = m, m, s
	if p.stderrR, p.stderrW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if stdin {
		fd, err := unix.Dup(int(m.Fd()))
		if err != nil {
			return nil, err
		}
		unix.CloseOnExec(fd)
		p.stdinW = os.NewFile(uintptr(fd), "ptmx")
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr.Setpgid = false
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0
	return p, nil
}

// resize sets the window size of the command's terminal; without one it
// does nothing.
func (p *execPipes) resize(r *agentpb.Resize) {
	if p.tty == nil || r == nil {
		return
	}
	rc, err := p.tty.SyscallConn()
	if err != nil {
		return
	}
	ws := &unix.Winsize{Row: uint16(min(r.Rows, 0xffff)), Col: uint16(min(r.Cols, 0xffff))}
	_ = rc.Control(func(fd uintptr) { _ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) })
}
