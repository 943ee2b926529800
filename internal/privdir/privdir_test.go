package privdir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestEnsure(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		name    string
		setup   func(path string)
		wantErr bool
	}{
		{name: "missing is created", setup: func(string) {}},
		{name: "existing private", setup: func(p string) { os.Mkdir(p, 0o700) }},
		{name: "group readable", setup: func(p string) { os.Mkdir(p, 0o700); os.Chmod(p, 0o750) }, wantErr: true},
		{name: "world writable", setup: func(p string) { os.Mkdir(p, 0o700); os.Chmod(p, 0o777) }, wantErr: true},
		{name: "symlink to private dir", setup: func(p string) {
			target := p + ".target"
			os.Mkdir(target, 0o700)
			os.Symlink(target, p)
		}, wantErr: true},
		{name: "regular file", setup: func(p string) { os.WriteFile(p, nil, 0o600) }, wantErr: true},
		{name: "other owner", setup: func(p string) { os.Mkdir(p, 0o700); os.Chown(p, 12345, 12345) }, wantErr: os.Geteuid() == 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(base, string(rune('a'+i)), "leaf")
			os.Mkdir(filepath.Dir(p), 0o700)
			tt.setup(p)
			err := Ensure(p)
			if tt.wantErr {
				if !errors.Is(err, ErrUnsafe) {
					t.Fatalf("Ensure = %v, want ErrUnsafe", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ensure = %v", err)
			}
			fi, _ := os.Stat(p)
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("mode = %v, want 0700", fi.Mode().Perm())
			}
		})
	}
}
