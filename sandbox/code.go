package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"time"
)

// interpreters maps RunCode's languages to an interpreter and a file
// suffix; fallback is tried when the interpreter is missing.
var interpreters = map[string]struct{ prog, suffix, fallback string }{
	"python":     {"python3", ".py", "python"},
	"python3":    {"python3", ".py", "python"},
	"javascript": {"node", ".js", ""},
	"node":       {"node", ".js", ""},
	"bash":       {"bash", ".sh", "sh"},
	"sh":         {"sh", ".sh", ""},
}

// Languages lists the languages RunCode accepts.
func Languages() []string {
	return []string{"python", "python3", "javascript", "node", "bash", "sh"}
}

// CodeDir is where RunCode writes code in the guest.
const CodeDir = "/tmp/petty-code"

// RunCode runs code in language's interpreter: the code goes to a file in
// the guest (never argv), which the interpreter runs and which is removed
// afterwards. o.Args is ignored; o.User may name another user (the file is
// then readable by all).
func (s *Sandbox) RunCode(ctx context.Context, language, code string, o RunOptions) (*Result, error) {
	in, ok := interpreters[language]
	if !ok {
		return nil, &InvalidError{Field: "language", Problem: "unknown language " + quote(language) + "; want python, javascript, node, bash or sh"}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	path := CodeDir + "/" + hex.EncodeToString(b[:]) + in.suffix
	perm := fs.FileMode(0o600)
	if o.User != "" && o.User != "root" && o.User != "0" {
		perm = 0o644 // the file is root's; the user must read it
	}
	if err := s.WriteFile(ctx, path, []byte(code), perm); err != nil {
		return nil, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.fileCommand(rctx, "remove", path, "rm", "-f", "--", path)
	}()
	o.Args = []string{in.prog, path}
	res, err := s.Run(ctx, o)
	if errors.Is(err, fs.ErrNotExist) && in.fallback != "" {
		o.Args = []string{in.fallback, path}
		res, err = s.Run(ctx, o)
	}
	return res, err
}

func quote(s string) string { return "\"" + s + "\"" }
