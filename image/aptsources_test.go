package image

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHostDebianSource(t *testing.T) {
	tests := []struct {
		name  string
		list  string            // sources.list
		files map[string]string // sources.list.d
		want  AptSource
		err   error
	}{
		{
			name: "deb822 as on Debian 12",
			files: map[string]string{
				"debian.sources": "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n" +
					"Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n",
				"nodesource.sources.disabled": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n",
			},
			want: AptSource{URI: "http://deb.debian.org/debian", Suite: "bookworm", Components: []string{"main"}},
		},
		{
			name: "one-line format with options, security first",
			list: "# comment\ndeb-src http://ftp.de.debian.org/debian trixie main\n" +
				"deb http://security.debian.org/debian-security trixie-security main\n" +
				"deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://ftp.de.debian.org/debian/ trixie main contrib\n",
			want: AptSource{URI: "http://ftp.de.debian.org/debian/", Suite: "trixie", Components: []string{"main", "contrib"}},
		},
		{
			name:  "sources.list before sources.list.d",
			list:  "deb http://mirror.example/debian bullseye main\n",
			files: map[string]string{"a.list": "deb http://deb.debian.org/debian bookworm main\n"},
			want:  AptSource{URI: "http://mirror.example/debian", Suite: "bullseye", Components: []string{"main"}},
		},
		{
			name: "disabled stanza and third-party repositories are skipped",
			files: map[string]string{
				"a.sources": "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
				"b.list":    "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\ndeb http://deb.debian.org/debian bookworm contrib\n",
			},
			err: ErrNoDebianSource,
		},
		{name: "nothing", err: ErrNoDebianSource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := filepath.Join(dir, "sources.list.d")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			list := filepath.Join(dir, "sources.list")
			if tt.list != "" {
				if err := os.WriteFile(list, []byte(tt.list), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for n, c := range tt.files {
				if err := os.WriteFile(filepath.Join(d, n), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			setVar(t, &aptSourcesList, list)
			setVar(t, &aptSourcesDir, d)
			got, err := HostDebianSource()
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("source (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPackageList(t *testing.T) {
	got := packageList([]string{"jq", "git", "bash"})
	if got[0] != "bash" || len(got) != len(DefaultPackages)+1 {
		t.Errorf("packageList = %v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Errorf("packageList not sorted and unique: %v", got)
		}
	}
}

func TestArchiveDate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/debian/dists/bookworm/Release":
			io.WriteString(w, "Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 10 May 2025 08:55:12 UTC\nAcquire-By-Hash: yes\n")
		case "/debian/dists/nodate/Release":
			io.WriteString(w, "Origin: Debian\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	got, err := archiveDate(context.Background(), srv.URL+"/debian/", "bookworm")
	if err != nil || !got.Equal(time.Date(2025, 5, 10, 8, 55, 12, 0, time.UTC)) {
		t.Errorf("archiveDate = %v, %v", got, err)
	}
	for _, suite := range []string{"nodate", "absent"} {
		if _, err := archiveDate(context.Background(), srv.URL+"/debian", suite); err == nil {
			t.Errorf("archiveDate(%s) succeeded", suite)
		}
	}
}
