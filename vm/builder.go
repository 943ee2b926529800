package vm

import (
	"context"
	"log/slog"
)

// Builder is a thin fluent way to write a Config. Every method sets one field
// and returns the Builder; Config returns a copy of what was built. The zero
// Builder is ready to use.
type Builder struct{ cfg Config }

// NewBuilder returns a Builder starting from a copy of base (e.g. Config{}).
func NewBuilder(base Config) *Builder { return &Builder{cfg: base.clone()} }

// VMM sets Config.VMM.
func (b *Builder) VMM(v VMM) *Builder { b.cfg.VMM = v; return b }

// VCPUs sets Config.VCPUs.
func (b *Builder) VCPUs(n int) *Builder { b.cfg.VCPUs = n; return b }

// MemoryMiB sets Config.MemoryMiB.
func (b *Builder) MemoryMiB(n int) *Builder { b.cfg.MemoryMiB = n; return b }

// Kernel sets Config.Kernel and, when initrd is given, Config.Initrd.
func (b *Builder) Kernel(path string, initrd ...string) *Builder {
	b.cfg.Kernel = path
	if len(initrd) > 0 {
		b.cfg.Initrd = initrd[0]
	}
	return b
}

// BootArgs sets Config.BootArgs.
func (b *Builder) BootArgs(args string) *Builder { b.cfg.BootArgs = args; return b }

// RootFS sets Config.RootDrive to the file at path (read-write).
func (b *Builder) RootFS(path string) *Builder {
	b.cfg.RootDrive = Drive{ID: b.cfg.RootDrive.ID, Path: path}
	return b
}

// Drive appends an extra drive to Config.Drives.
func (b *Builder) Drive(d Drive) *Builder { b.cfg.Drives = append(b.cfg.Drives, d); return b }

// Network sets Config.Network to the tap named tap with an optional guest MAC.
func (b *Builder) Network(tap, mac string) *Builder {
	b.cfg.Network = &Network{Tap: tap, MAC: mac}
	return b
}

// Vsock adds a vsock device with the given guest CID (0 means the default).
func (b *Builder) Vsock(cid uint32) *Builder { b.cfg.Vsock = &Vsock{CID: cid}; return b }

// FirecrackerBin sets Config.FirecrackerBin.
func (b *Builder) FirecrackerBin(path string) *Builder { b.cfg.FirecrackerBin = path; return b }

// RunDir sets Config.RunDir.
func (b *Builder) RunDir(dir string) *Builder { b.cfg.RunDir = dir; return b }

// Logger sets Config.Logger.
func (b *Builder) Logger(l *slog.Logger) *Builder { b.cfg.Logger = l; return b }

// Config returns a deep copy of the Config built so far.
func (b *Builder) Config() Config { return b.cfg.clone() }

// New is New(b.Config()).
func (b *Builder) New() (*Machine, error) { return New(b.Config()) }

// Start is Create(ctx, b.Config()): it validates, creates and boots the VM.
func (b *Builder) Start(ctx context.Context) (*Machine, error) { return Create(ctx, b.Config()) }
