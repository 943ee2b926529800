package wire

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBootToken(t *testing.T) {
	for _, tt := range []struct{ cmdline, want string }{
		{"console=ttyS0 quiet", ""},
		{"petty.token=ab12 quiet", "ab12"},
		{"petty.token=old petty.listen=x petty.token=new\n", "new"},
		{"xpetty.token=no", ""},
	} {
		if got := BootToken(tt.cmdline); got != tt.want {
			t.Errorf("BootToken(%q) = %q, want %q", tt.cmdline, got, tt.want)
		}
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := ReadTokenFile(write("ok", "abc\n")); err != nil || tok != "abc" {
		t.Errorf("ReadTokenFile = %q, %v", tok, err)
	}
	for _, bad := range []string{"", "\n", "a b\n"} {
		if _, err := ReadTokenFile(write("bad", bad)); !errors.Is(err, ErrAuth) {
			t.Errorf("ReadTokenFile(%q) = %v, want ErrAuth", bad, err)
		}
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestAuthLineOK(t *testing.T) {
	for _, tt := range []struct {
		line, token string
		want        bool
	}{
		{"PETTY-AUTH abc", "abc", true},
		{"PETTY-AUTH abd", "abc", false},
		{"PETTY-AUTH ab", "abc", false},
		{"PETTY-AUTH abcd", "abc", false},
		{"PETTY-AUTH anything", "", true},
		{"PETTY-AUTH ", "", true},
		{"PETTY-AUTH a b", "", false},
		{"PETTY-AUTHabc", "abc", false},
		{"abc", "abc", false},
		{"PETTY-AUTH " + strings.Repeat("x", MaxTokenLen+1), "", false},
	} {
		if got := AuthLineOK([]byte(tt.line), tt.token); got != tt.want {
			t.Errorf("AuthLineOK(%q, %q) = %v, want %v", tt.line, tt.token, got, tt.want)
		}
	}
}

func TestCheckAuth(t *testing.T) {
	var out bytes.Buffer
	in := strings.NewReader("PETTY-AUTH tok\nFRAMES")
	if err := CheckAuth(in, &out, "tok"); err != nil || out.String() != AuthOK {
		t.Fatalf("CheckAuth = %v, answered %q", err, out.String())
	}
	if rest := in.Len(); rest != len("FRAMES") {
		t.Errorf("CheckAuth consumed past the line: %d bytes left", rest)
	}
	out.Reset()
	if err := CheckAuth(strings.NewReader("PETTY-AUTH bad\n"), &out, "tok"); !errors.Is(err, ErrAuth) || out.Len() != 0 {
		t.Errorf("wrong token: %v, answered %q", err, out.String())
	}
	if err := CheckAuth(strings.NewReader(AuthPrefix+strings.Repeat("a", 1<<20)), &out, ""); !errors.Is(err, ErrAuth) {
		t.Errorf("long line: %v", err)
	}
}
