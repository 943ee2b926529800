package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progressDelay is how long a step must last before a terminal shows it.
const progressDelay = time.Second

// progress shows what petty is waiting for on stderr: on a terminal, a line
// for each step that lasts over progressDelay (erased when it ends); with -v,
// or for an image build (see forBuild), every step at once, as a plain
// line. Otherwise it prints nothing, and never on stdout.
type progress struct {
	w        io.Writer
	terminal bool
	verbose  bool
	lines    bool // every step as a plain line (forBuild off a terminal)

	mu      sync.Mutex
	timer   *time.Timer
	shown   bool // a terminal line is on screen
	current string
}

func newProgress(w io.Writer, verbose bool) *progress {
	return &progress{w: w, terminal: isTerminal(w), verbose: verbose}
}

// forBuild returns the progress of an image build, which can take
// minutes: off a terminal (a log, a CI job) each step is a plain line at
// once, never a redrawn one; otherwise p itself.
func (p *progress) forBuild() *progress {
	if p == nil || p.terminal || p.verbose {
		return p
	}
	return &progress{w: p.w, lines: true}
}

// step announces a new step, ending the previous one.
func (p *progress) step(format string, args ...any) {
	if p == nil || (!p.terminal && !p.verbose && !p.lines) {
		return
	}
	msg := fmt.Sprintf(format, args...) + "…"
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked()
	if p.verbose || p.lines {
		fmt.Fprintln(p.w, "petty: "+msg)
		return
	}
	p.current = msg
	p.timer = time.AfterFunc(progressDelay, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.current == msg && !p.shown {
			fmt.Fprint(p.w, msg)
			p.shown = true
		}
	})
}

// done ends the current step.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked()
}

func (p *progress) endLocked() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K") // erase the line
		p.shown = false
	}
	p.current = ""
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
