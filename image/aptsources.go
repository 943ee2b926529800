package image

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrNoDebianSource is returned (wrapped) when the host's apt configuration
// names no Debian main archive and BuildSpec gives no Mirror and Release.
var ErrNoDebianSource = errors.New("image: the host's apt sources name no Debian archive (pass --mirror URL and --release SUITE)")

// aptSourcesDir and aptSourcesList are where apt keeps its sources;
// variables so tests can point them elsewhere.
var (
	aptSourcesList = "/etc/apt/sources.list"
	aptSourcesDir  = "/etc/apt/sources.list.d"
)

// AptSource is one "deb" entry of an apt configuration: a mirror URI, a
// suite and its components.
type AptSource struct {
	// URI is the archive's base URL, e.g. http://deb.debian.org/debian.
	URI string
	// Suite is the release, e.g. bookworm.
	Suite string
	// Components are the archive areas, e.g. main.
	Components []string
}

// HostDebianSource returns the first Debian main archive the host's apt
// sources name, reading /etc/apt/sources.list and then
// /etc/apt/sources.list.d/*.list and *.sources (deb822) in name order. It
// never falls back to a built-in mirror: without one it returns
// ErrNoDebianSource.
func HostDebianSource() (AptSource, error) {
	files := []string{aptSourcesList}
	entries, err := os.ReadDir(aptSourcesDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return AptSource{}, fmt.Errorf("image: apt sources: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources") {
			files = append(files, filepath.Join(aptSourcesDir, n))
		}
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return AptSource{}, fmt.Errorf("image: apt sources: %w", err)
		}
		var srcs []AptSource
		if strings.HasSuffix(f, ".sources") {
			srcs, err = parseDeb822Sources(fh)
		} else {
			srcs, err = parseOneLineSources(fh)
		}
		fh.Close()
		if err != nil {
			return AptSource{}, fmt.Errorf("image: apt sources %s: %w", f, err)
		}
		for _, s := range srcs {
			if isDebianMain(s) {
				return s, nil
			}
		}
	}
	return AptSource{}, ErrNoDebianSource
}

// isDebianMain reports whether s is a Debian archive's main area of a
// release proper (not -security, -updates, -backports or a third-party
// repository).
func isDebianMain(s AptSource) bool {
	u, err := url.Parse(s.URI)
	if err != nil || u.Host == "" && u.Scheme != "file" {
		return false
	}
	p := strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(p, "/debian") && !strings.Contains(p, "/debian/") {
		return false // debian-security, debian-ports, nodesource, ...
	}
	if s.Suite == "" || strings.Contains(s.Suite, "/") || strings.Contains(s.Suite, "-") {
		return false
	}
	return slices.Contains(s.Components, "main")
}

// parseOneLineSources parses the one-line format:
// "deb [opts] URI SUITE COMPONENT...". deb-src and comments are skipped.
func parseOneLineSources(r io.Reader) ([]AptSource, error) {
	var out []AptSource
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			// Options: "[arch=amd64 signed-by=...]" possibly over several fields.
			for len(f) > 0 {
				end := strings.HasSuffix(f[0], "]")
				f = f[1:]
				if end {
					break
				}
			}
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, AptSource{URI: f[0], Suite: f[1], Components: f[2:]})
	}
	return out, sc.Err()
}

// parseDeb822Sources parses the deb822 format of *.sources files: stanzas
// separated by blank lines with Types, URIs, Suites, Components and
// Enabled fields. Every URI × suite pair of a "deb" stanza is an entry.
func parseDeb822Sources(r io.Reader) ([]AptSource, error) {
	var out []AptSource
	fields := map[string]string{}
	var last string
	flush := func() {
		defer clear(fields)
		if strings.EqualFold(fields["enabled"], "no") || !slices.Contains(strings.Fields(fields["types"]), "deb") {
			return
		}
		comps := strings.Fields(fields["components"])
		for _, u := range strings.Fields(fields["uris"]) {
			for _, s := range strings.Fields(fields["suites"]) {
				out = append(out, AptSource{URI: u, Suite: s, Components: comps})
			}
		}
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
			last = ""
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last != "" { // continuation line
				fields[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out, sc.Err()
}
