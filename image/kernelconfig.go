package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// configLine parses one line of a kernel .config or config fragment:
// "CONFIG_X=VALUE", or "# CONFIG_X is not set" (value "n"). ok is false for
// any other line (comments, blank lines).
func configLine(line string) (name, value string, ok bool) {
	line = strings.TrimSpace(line)
	if rest, found := strings.CutPrefix(line, "# "); found {
		if name, found := strings.CutSuffix(rest, " is not set"); found && strings.HasPrefix(name, "CONFIG_") {
			return name, "n", true
		}
		return "", "", false
	}
	name, value, found := strings.Cut(line, "=")
	if !found || !strings.HasPrefix(name, "CONFIG_") {
		return "", "", false
	}
	return name, value, true
}

// formatConfigLine is the .config line setting name to value.
func formatConfigLine(name, value string) string {
	if value == "n" {
		return "# " + name + " is not set"
	}
	return name + "=" + value
}

// parseConfig returns the options a .config or fragment sets, in order,
// and their values; a later setting of an option wins.
func parseConfig(s string) (names []string, values map[string]string) {
	values = map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		name, value, ok := configLine(line)
		if !ok {
			continue
		}
		if _, seen := values[name]; !seen {
			names = append(names, name)
		}
		values[name] = value
	}
	return names, values
}

// mergeConfig returns the .config base with every option fragment sets
// taking fragment's value, as scripts/kconfig/merge_config.sh does: the
// option's line in base is removed and fragment's settings are appended,
// in fragment's order. Appending matters for choices: of two members set
// to y, Kconfig keeps the later one (tinyconfig's CONFIG_KERNEL_XZ=y would
// win over a CONFIG_KERNEL_GZIP=y written in its place). "=n" is written
// as "# CONFIG_X is not set". Kconfig's olddefconfig then resolves the
// result.
func mergeConfig(base, fragment string) string {
	names, values := parseConfig(fragment)
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(base, "\n"), "\n") {
		if name, _, ok := configLine(line); ok {
			if _, set := values[name]; set {
				continue
			}
		}
		b.WriteString(line + "\n")
	}
	for _, name := range names {
		b.WriteString(formatConfigLine(name, values[name]) + "\n")
	}
	return b.String()
}

// configMismatches returns "CONFIG_X=want (got)" for every option of
// fragment that config does not have: an option absent from config counts
// as "n" (Kconfig leaves out options whose dependencies are off).
func configMismatches(config, fragment string) []string {
	_, have := parseConfig(config)
	names, want := parseConfig(fragment)
	var bad []string
	for _, name := range names {
		got, ok := have[name]
		if !ok {
			got = "n"
		}
		if got != want[name] {
			bad = append(bad, fmt.Sprintf("%s=%s (got %s)", name, want[name], got))
		}
	}
	return bad
}

// keyHash hashes length-prefixed named fields into a hex cache key, so
// that no two different field lists hash alike.
type keyHash struct{ h hash.Hash }

func newKeyHash() *keyHash { return &keyHash{h: sha256.New()} }

func (k *keyHash) field(name, value string) {
	fmt.Fprintf(k.h, "%s %d %s\n", name, len(value), value)
}

func (k *keyHash) sum() string { return hex.EncodeToString(k.h.Sum(nil)) }
