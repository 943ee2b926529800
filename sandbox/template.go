package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pettyvm/petty/internal/privdir"
	"github.com/pettyvm/petty/vm"
)

// templateRetry is how long a template that could not be made is not
// tried again (sandboxes boot cold meanwhile).
const templateRetry = time.Minute

// templateMarker is the file, in a template's directory, that holds its
// identity: written last, it says the template is complete.
const templateMarker = "petty-template"

// templates are the Manager's template snapshots, one per identity, in
// directories under root.
type templates struct {
	mu    sync.Mutex
	root  string // made on first use
	temp  bool   // root is a private temporary directory, removed by Close
	byKey map[identity]*template
	wg    sync.WaitGroup // the builds under way
}

// template is a template snapshot, made or being made.
type template struct {
	dir  string
	done chan struct{} // closed once made (or failed)
	err  error         // why it could not be made
	at   time.Time     // when it was done
}

// templateRootLocked returns the directory of the templates, making it (0700) on
// first use: Config.StateDir/templates, else a private temporary
// directory. Callers hold t.mu.
func (m *Manager) templateRootLocked() (string, error) {
	t := &m.templates
	if t.root != "" {
		return t.root, nil
	}
	if m.cfg.StateDir == "" {
		dir, err := os.MkdirTemp(m.cfg.WorkDir, "petty-templates-")
		if err != nil {
			return "", err
		}
		t.root, t.temp = dir, true
		return dir, nil
	}
	root := filepath.Join(m.cfg.StateDir, "templates")
	for _, d := range []string{m.cfg.StateDir, root} {
		if err := privdir.Ensure(d); err != nil {
			return "", err
		}
	}
	sweepStaleBuilds(root, time.Now().Add(-staleBuildAge))
	t.root = root
	return root, nil
}

// buildPrefix begins the name of a template's directory while it is made.
const buildPrefix = ".building-"

// staleBuildAge is how old a template's build directory must be for a new
// Manager to take it for the leftover of a crash: making a template takes
// seconds, a build of another live Manager on the same StateDir is young.
const staleBuildAge = time.Hour

// sweepStaleBuilds removes the build directories (".building-*") under
// root last modified before cutoff: what a Manager that died while making
// a template left behind.
func sweepStaleBuilds(root string, cutoff time.Time) {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), buildPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// template returns the directory of the template snapshot of image name
// (img, ident) at cfg's size, making it first if need be: a cold boot,
// a snapshot at agent-ready, the VM destroyed. Callers asking at once for
// one template share its making; one made by an earlier Manager on the
// same StateDir is used as it is.
func (m *Manager) template(ctx context.Context, name string, img Image, ident identity, cfg vm.Config) (string, error) {
	if err := snapshotsSupported(cfg); err != nil {
		return "", err
	}
	t := &m.templates
	t.mu.Lock()
	tp := t.byKey[ident]
	if tp != nil {
		select {
		case <-tp.done:
			if tp.err != nil && !errors.Is(tp.err, vm.ErrSnapshotUnsupported) && time.Since(tp.at) >= templateRetry {
				tp = nil // try again (a VMM that cannot snapshot never will)
			}
		default:
		}
	}
	if tp == nil {
		root, err := m.templateRootLocked()
		if err != nil {
			t.mu.Unlock()
			return "", fmt.Errorf("sandbox: the templates' directory: %w", err)
		}
		tp = &template{dir: filepath.Join(root, templatePrefix(name, cfg)+string(ident)[:16]), done: make(chan struct{})}
		if t.byKey == nil {
			t.byKey = map[identity]*template{}
		}
		t.byKey[ident] = tp
		if templateAt(tp.dir, ident) {
			tp.at = time.Now()
			close(tp.done)
			m.log.Info("using a template snapshot made earlier", "image", name, "dir", tp.dir)
		} else {
			t.wg.Add(1)
			go m.buildTemplate(tp, name, img, ident, cfg)
		}
	}
	t.mu.Unlock()
	select {
	case <-tp.done:
		return tp.dir, tp.err
	case <-ctx.Done():
		return "", fmt.Errorf("sandbox: waiting for the template snapshot: %w", ctx.Err())
	}
}

// buildTemplate makes tp (Close aborts it).
func (m *Manager) buildTemplate(tp *template, name string, img Image, ident identity, cfg vm.Config) {
	defer m.templates.wg.Done()
	began := time.Now()
	ctx, cancel := context.WithTimeout(m.life, 2*m.cfg.BootTimeout)
	defer cancel()
	err := m.snapshotTemplate(ctx, tp.dir, img, ident, cfg)
	d := time.Since(began)
	tp.err, tp.at = err, time.Now()
	close(tp.done)
	if err != nil {
		m.log.Warn("making a template snapshot", "image", name, "err", err)
	} else {
		m.log.Info("made a template snapshot", "image", name, "memory_mib", cfg.MemoryMiB, "vcpus", cfg.VCPUs,
			"dir", tp.dir, "took", d.Round(time.Millisecond))
	}
	if f := m.cfg.OnTemplate; f != nil {
		f(name, d, err)
	}
}

// snapshotTemplate boots a VM of img, snapshots it once its agent answers
// into dir (replacing the templates of the same image and size made from
// older files) and destroys it.
func (m *Manager) snapshotTemplate(ctx context.Context, dir string, img Image, ident identity, cfg vm.Config) (retErr error) {
	inst, err := m.coldBoot(ctx, img, cfg, func(string) {})
	if err != nil {
		return err
	}
	defer m.discard(ctx, inst)
	// The clones' agents start with no connection: each clone's host dials
	// its own.
	_ = inst.client.Close()
	inst.client = nil
	root := filepath.Dir(dir)
	tmp, err := os.MkdirTemp(root, buildPrefix)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := snapshotVM(ctx, inst.machine, tmp); err != nil {
		return fmt.Errorf("sandbox: snapshotting the template: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, templateMarker), []byte(ident), 0o600); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if templateAt(dir, ident) {
		_ = os.RemoveAll(tmp) // another Manager on this StateDir made it meanwhile
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if templateAt(dir, ident) {
			_ = os.RemoveAll(tmp)
			return nil
		}
		return fmt.Errorf("sandbox: %w", err)
	}
	// Older templates of this image and size: their files changed since.
	prefix := templatePrefix("", cfg)
	if base := filepath.Base(dir); len(base) > 16 {
		prefix = base[:len(base)-16]
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if p := filepath.Join(root, e.Name()); p != dir && strings.HasPrefix(e.Name(), prefix) {
			_ = os.RemoveAll(p)
		}
	}
	return nil
}

// templateAt reports whether dir holds the complete template of ident.
func templateAt(dir string, ident identity) bool {
	b, err := os.ReadFile(filepath.Join(dir, templateMarker))
	return err == nil && string(b) == string(ident)
}

// invalidate removes the files of the template of ident, from which a
// restore failed with why, and keeps the failure for templateRetry:
// meanwhile sandboxes boot cold, and the next sandbox after makes the
// template again (a restore that fails for a reason of the VMM's or the
// guest's would otherwise make it again on every Create).
func (m *Manager) invalidate(ident identity, why error) {
	t := &m.templates
	t.mu.Lock()
	tp := t.byKey[ident]
	if tp != nil {
		select {
		case <-tp.done:
			failed := &template{dir: tp.dir, done: make(chan struct{}), at: time.Now(),
				err: fmt.Errorf("sandbox: a restore from the template failed: %w", why)}
			close(failed.done)
			t.byKey[ident] = failed
		default:
			tp = nil // being made again already
		}
	}
	t.mu.Unlock()
	if tp != nil {
		_ = os.RemoveAll(tp.dir)
	}
}

// restore starts a VM from the template snapshot of img at cfg's size
// (making it first if need be) and waits for its agent.
func (m *Manager) restore(ctx context.Context, name string, img Image, ident identity, cfg vm.Config, progress func(string)) (*instance, error) {
	progress("preparing the template snapshot")
	dir, err := m.template(ctx, name, img, ident, cfg)
	if err != nil {
		return nil, err
	}
	progress("restoring the template snapshot")
	bctx, cancel := context.WithTimeout(ctx, m.cfg.BootTimeout)
	defer cancel()
	inst, err := restoreVM(bctx, dir, cfg)
	if err != nil {
		if ctx.Err() == nil {
			m.invalidate(ident, err)
		}
		return nil, fmt.Errorf("sandbox: restoring the template: %w", err)
	}
	inst.memoryMiB, inst.origin, inst.ident = cfg.MemoryMiB, "restored", ident
	progress("waiting for the guest agent")
	if inst.client, err = inst.machine.Agent(bctx); err != nil {
		tail := inst.machine.ConsoleTail()
		m.discard(ctx, inst)
		if ctx.Err() == nil {
			m.invalidate(ident, err)
		}
		return nil, fmt.Errorf("sandbox: the restored guest's agent did not answer: %w (console tail: %q)", err, lastBytes(tail, 512))
	}
	return inst, nil
}

// closeTemplates waits for the builds (Close aborted them) and removes a
// temporary templates directory.
func (m *Manager) closeTemplates() error {
	t := &m.templates
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.temp && t.root != "" {
		if err := os.RemoveAll(t.root); err != nil {
			return fmt.Errorf("sandbox: removing the templates: %w", err)
		}
		t.root = ""
	}
	return nil
}
