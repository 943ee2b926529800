package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultPackages are the Debian packages of the default image, beyond
// the Essential set mmdebstrap's apt variant installs (which has
// coreutils, bash, grep, sed, tar, gzip, findutils, ...).
var DefaultPackages = []string{
	"bash", "ca-certificates", "coreutils", "curl", "git", "iproute2",
	"netbase", "nodejs", "npm", "procps", "python3", "python3-pip",
	"python3-venv",
}

// mmdebstrapPackage provides the tool that builds Debian images.
const mmdebstrapPackage = "mmdebstrap"

// ErrPackages is returned (wrapped, with apt's own message) when apt cannot
// install the packages asked for, e.g. one it cannot find.
var ErrPackages = errors.New("image: apt could not install the packages")

// fixedSourceDateEpoch is the SOURCE_DATE_EPOCH of a Debian image when the
// archive's Release file cannot be fetched (recorded in the manifest).
const fixedSourceDateEpoch = 1700000000

// userHook adds the unprivileged user (uid and gid 1000, home /home/user,
// shell /bin/bash) by appending to the account files, which is
// deterministic (useradd records today's date), and removes what would
// differ between two builds or hosts: logs, caches, apt lists, the
// machine id and the host's /etc/resolv.conf, which mmdebstrap copies in
// (the guest's network setup writes its own).
const userHook = `set -e
r="$1"
echo 'user:x:1000:1000:user:/home/user:/bin/bash' >>"$r/etc/passwd"
echo 'user:x:1000:' >>"$r/etc/group"
echo 'user:*::0:99999:7:::' >>"$r/etc/shadow"
echo 'user:!::' >>"$r/etc/gshadow"
mkdir -p "$r/home/user"
if [ -d "$r/etc/skel" ]; then cp -a "$r/etc/skel/." "$r/home/user/"; fi
chown -R 1000:1000 "$r/home/user"
chmod 0755 "$r/home/user"
printf 'petty\n' >"$r/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpetty\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/ldconfig/aux-cache "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
rm -f "$r"/var/log/dpkg.log "$r"/var/log/alternatives.log "$r"/var/log/apt/* "$r/etc/machine-id"
rm -f "$r/etc/resolv.conf"
`

// mmdebstrapArgs returns mmdebstrap's command line writing a tar of the
// root file system to out.
func mmdebstrapArgs(release, mirror string, packages []string, out string) []string {
	mode := "root"
	if os.Geteuid() != 0 {
		mode = "unshare" // needs /etc/subuid, see mmdebstrap(1)
	}
	return []string{
		"--mode=" + mode,
		"--variant=apt",
		"--format=tar",
		"--include=" + strings.Join(packages, ","),
		"--aptopt=APT::Install-Recommends \"false\"",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-include=/usr/share/locale/locale.alias",
		"--customize-hook=" + userHook,
		release, out, mirror,
	}
}

// packageList is the sorted, deduplicated default set plus extra.
func packageList(extra []string) []string {
	out := slices.Concat(DefaultPackages, extra)
	slices.Sort(out)
	return slices.Compact(out)
}

// runMmdebstrap builds the Debian root file system tarball out, or with
// simulate only checks that apt can install the packages. Lines
// starting "I: " are progress steps; every line goes to log; a failure's
// error carries apt's own "E:" lines (or the last lines of output).
func runMmdebstrap(ctx context.Context, release, mirror string, packages []string, epoch int64, out string, simulate bool, progress func(string), log *slog.Logger) error {
	bin, err := exec.LookPath(mmdebstrapPackage)
	if err != nil {
		return &MissingError{What: "mmdebstrap", Package: mmdebstrapPackage, Err: err}
	}
	args := mmdebstrapArgs(release, mirror, packages, out)
	if simulate {
		// apt-get --simulate: updates the package lists and resolves the
		// packages (seconds) without installing anything.
		args = append([]string{"--simulate"}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10), "LC_ALL=C.UTF-8")
	cmd.WaitDelay = 10 * time.Second
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("image: mmdebstrap: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("image: mmdebstrap: %w", err)
	}
	pw.Close()
	var (
		wg             sync.WaitGroup
		aptErrs, lines []string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			log.Debug("mmdebstrap", "line", line)
			switch {
			case strings.HasPrefix(line, "I: "):
				progress("debian: " + strings.TrimSuffix(strings.TrimPrefix(line, "I: "), "..."))
			case strings.HasPrefix(line, "E: "):
				aptErrs = append(aptErrs, line)
			}
			if lines = append(lines, line); len(lines) > 20 {
				lines = lines[1:]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	werr := cmd.Wait()
	wg.Wait()
	pr.Close()
	if werr == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var apt []string
	for _, l := range aptErrs {
		// apt's own messages come before mmdebstrap's summary ("E: apt-get ... failed").
		if !strings.Contains(l, "failed") || strings.Contains(l, "Unable to") {
			apt = append(apt, l)
		}
	}
	if len(apt) == 0 {
		apt = lines
	}
	return fmt.Errorf("%w: mmdebstrap: %w:\n%s", ErrPackages, werr, strings.Join(apt, "\n"))
}

// releaseDateTimeout bounds fetching the archive's Release file.
const releaseDateTimeout = 15 * time.Second

// archiveDate fetches mirror/dists/release/Release and returns its Date
// field, the archive state the image is built from.
func archiveDate(ctx context.Context, mirror, release string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, releaseDateTimeout)
	defer cancel()
	u := strings.TrimSuffix(mirror, "/") + "/dists/" + release + "/Release"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("image: %s: %w", u, err)
	}
	// No keep-alive: nothing of this request outlives it (goleak).
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("image: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return time.Time{}, fmt.Errorf("image: %s: %s", u, resp.Status)
	}
	// The Date field is in the first lines; read no further.
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<10))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Date:"); ok {
			t, err := mail.ParseDate(strings.TrimSpace(v))
			if err != nil {
				return time.Time{}, fmt.Errorf("image: %s: Date: %w", u, err)
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("image: %s: no Date field", u)
}
