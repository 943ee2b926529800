package vm

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pettyvm/petty/qemu"
)

var tokenRE = regexp.MustCompile(`petty\.token=([0-9a-f]{32})\b`)

// checkTokenFile checks the run directory's token file and returns the token.
func checkTokenFile(t *testing.T, runDir string) string {
	t.Helper()
	fi, err := os.Stat(filepath.Join(runDir, AgentTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", AgentTokenFile, fi.Mode().Perm())
	}
	tok, err := ReadAgentToken(runDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 2*tokenBytes {
		t.Errorf("token %q, want %d hex digits", tok, 2*tokenBytes)
	}
	return tok
}

// TestQEMUTokenOffArgv: each boot gets a fresh token, which reaches QEMU in
// a 0600 config file and never on its argv.
func TestQEMUTokenOffArgv(t *testing.T) {
	c := validConfig(t)
	c.VMM, c.QEMUBin = QEMU, "/bin/true"
	d := c.withDefaults()
	runDir := t.TempDir()
	var prev string
	for n := range 2 {
		q := &qemuBackend{log: d.Logger}
		cmd, err := q.command(&boot{id: "0123456789abcdef", cfg: &d, runDir: runDir})
		if err != nil {
			t.Fatal(err)
		}
		tok := checkTokenFile(t, runDir)
		if tok == prev {
			t.Errorf("boot %d reused the token", n)
		}
		prev = tok
		if slices.ContainsFunc(cmd.Args, func(a string) bool { return strings.Contains(a, tok) || strings.Contains(a, "petty.token") }) {
			t.Errorf("argv holds the token: %q", cmd.Args)
		}
		cfgPath := filepath.Join(runDir, qemuConfigName)
		if i := slices.Index(cmd.Args, "-readconfig"); i < 0 || cmd.Args[i+1] != cfgPath {
			t.Errorf("argv %q lacks -readconfig %s", cmd.Args, cfgPath)
		}
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if m := tokenRE.FindSubmatch(b); m == nil || string(m[1]) != tok {
			t.Errorf("config file %q does not carry token %s", b, tok)
		}
		if fi, _ := os.Stat(cfgPath); fi.Mode().Perm() != 0o600 {
			t.Errorf("config file mode %v, want 0600", fi.Mode().Perm())
		}
	}
}

// TestFirecrackerTokenOffArgv: the token travels in the 0600 config file.
func TestFirecrackerTokenOffArgv(t *testing.T) {
	c := validConfig(t)
	d := c.withDefaults()
	runDir := t.TempDir()
	f := &firecrackerBackend{log: d.Logger}
	cmd, err := f.command(&boot{id: "0123456789abcdef", cfg: &d, runDir: runDir})
	if err != nil {
		t.Fatal(err)
	}
	defer f.release()
	tok := checkTokenFile(t, runDir)
	if slices.ContainsFunc(cmd.Args, func(a string) bool { return strings.Contains(a, tok) }) {
		t.Errorf("argv holds the token: %q", cmd.Args)
	}
	if got := f.config(&d).BootSource.BootArgs; !strings.HasSuffix(got, " petty.token="+tok) {
		t.Errorf("boot args %q lack the token", got)
	}
	if useConfigFile {
		b, err := os.ReadFile(filepath.Join(runDir, configFileName))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "petty.token="+tok) {
			t.Errorf("config file lacks the token")
		}
	}
}

// TestCmdlineLimitQEMUConfigFile: under QEMU the limit is what its config
// file carries, token included, to the byte.
func TestCmdlineLimitQEMUConfigFile(t *testing.T) {
	c := validConfig(t)
	c.VMM, c.QEMUBin, c.BootArgs = QEMU, "/bin/true", "x"
	d := c.withDefaults()
	base := len(qemuCmdline(&d, qemu.AccelTCG, qemuHost{tscKHz: 9_999_999}, true)) + tokenParamLen
	c.BootArgs = strings.Repeat("x", 1+qemu.MaxConfigCmdline-base)
	if err := c.Validate(); err != nil {
		t.Errorf("a command line of exactly %d bytes: %v", qemu.MaxConfigCmdline, err)
	}
	c.BootArgs += "x"
	if err := c.Validate(); err == nil {
		t.Errorf("a command line of %d bytes passed", qemu.MaxConfigCmdline+1)
	}
}
