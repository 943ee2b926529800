package e2bserver_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"

	fspb "github.com/pettyvm/petty/e2b/envdpb/filesystem"
	procpb "github.com/pettyvm/petty/e2b/envdpb/process"
	"github.com/pettyvm/petty/e2bserver"
	"github.com/pettyvm/petty/sandbox"
)

func TestEnvdAuthAndHealth(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base"})
	other := e.create(map[string]any{"templateID": "base"})

	if resp, _ := e.envd(c, "GET", "/health", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("health: %s, want 204", resp.Status)
	}
	for _, token := range []string{"wrong", other.EnvdAccessToken} {
		hdr := http.Header{e2bserver.AccessTokenHeader: {token}}
		if resp, _ := e.envd(c, "GET", "/files?path=/etc/hostname&username=root", hdr, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /files with token %q: %s, want 401", token, resp.Status)
		}
		if resp, _ := e.envd(c, "POST", "/files?path=/tmp/x&username=root", hdr, strings.NewReader("x")); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /files with token %q: %s, want 401", token, resp.Status)
		}
		for _, json := range []bool{true, false} {
			proc, fs := e.clientsAs(c, token, "root", json)
			_, err := fs.Stat(ctx(t), connect.NewRequest(&fspb.StatRequest{Path: "/"}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("Stat (json %v) with token %q: %v, want unauthenticated", json, token, err)
			}
			_, err = proc.List(ctx(t), connect.NewRequest(&procpb.ListRequest{}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("List with token %q: %v, want unauthenticated", token, err)
			}
		}
	}
	// A unary Connect error as the SDKs read it: HTTP 401, a string code.
	resp, body := e.envd(c, "POST", "/filesystem.Filesystem/Stat", http.Header{
		e2bserver.AccessTokenHeader: {"wrong"}, "Content-Type": {"application/json"}, "Connect-Protocol-Version": {"1"}}, strings.NewReader(`{"path":"/"}`))
	var ce struct{ Code string }
	if err := json.Unmarshal(body, &ce); resp.StatusCode != http.StatusUnauthorized || err != nil || ce.Code != "unauthenticated" {
		t.Errorf("Stat with a wrong token: %s %s", resp.Status, body)
	}

	// A dead or unknown sandbox: 502 on health, unavailable on RPCs.
	if resp := e.do("DELETE", "/sandboxes/"+c.SandboxID, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatal(resp.Status)
	}
	for _, sb := range []created{c, {SandboxID: "nope", EnvdAccessToken: "x"}} {
		if resp, _ := e.envd(sb, "GET", "/health", nil, nil); resp.StatusCode != http.StatusBadGateway {
			t.Errorf("health of %s: %s, want 502", sb.SandboxID, resp.Status)
		}
		_, fs := e.clients(sb, true)
		if _, err := fs.Stat(ctx(t), connect.NewRequest(&fspb.StatRequest{Path: "/"})); connect.CodeOf(err) != connect.CodeUnavailable {
			t.Errorf("Stat in %s: %v, want unavailable", sb.SandboxID, err)
		}
	}
}

func TestFiles(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base"})
	dir := t.TempDir() // the fake's "guest" is this host

	written := func(resp *http.Response, body []byte, paths ...string) {
		t.Helper()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /files: %s %s", resp.Status, body)
		}
		var got []map[string]string
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%v in %s", err, body)
		}
		var want []map[string]string
		for _, p := range paths {
			want = append(want, map[string]string{"name": filepath.Base(p), "type": "file", "path": p})
		}
		if !cmp.Equal(got, want) {
			t.Errorf("POST /files: %v, want %v", got, want)
		}
	}
	q := func(p string) string { return "path=" + url.QueryEscape(p) + "&username=root" }

	// octet-stream, into a directory that does not exist yet
	p1 := filepath.Join(dir, "a/b/one.txt")
	resp, body := e.envd(c, "POST", "/files?"+q(p1), http.Header{"Content-Type": {"application/octet-stream"}}, strings.NewReader("one"))
	written(resp, body, p1)
	// gzip
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("zipped"))
	zw.Close()
	p2 := filepath.Join(dir, "two.txt")
	resp, body = e.envd(c, "POST", "/files?"+q(p2), http.Header{"Content-Type": {"application/octet-stream"}, "Content-Encoding": {"gzip"}}, &gz)
	written(resp, body, p2)
	// multipart: one file at the path parameter, then two named by their
	// file names (full paths, as the SDKs send them)
	multi := func(names []string, contents []string) (http.Header, *bytes.Buffer) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for i, n := range names {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="file"; filename="`+n+`"`)
			h.Set("Content-Type", "application/octet-stream")
			w, _ := mw.CreatePart(h)
			w.Write([]byte(contents[i]))
		}
		mw.Close()
		return http.Header{"Content-Type": {mw.FormDataContentType()}}, &b
	}
	p3 := filepath.Join(dir, "three.txt")
	h, b := multi([]string{"ignored"}, []string{"three"})
	resp, body = e.envd(c, "POST", "/files?"+q(p3), h, b)
	written(resp, body, p3)
	p4, p5 := filepath.Join(dir, "d/four.txt"), filepath.Join(dir, "five.txt")
	h, b = multi([]string{p4, p5}, []string{"four", ""})
	resp, body = e.envd(c, "POST", "/files?username=root", h, b)
	written(resp, body, p4, p5)
	for p, want := range map[string]string{p1: "one", p2: "zipped", p3: "three", p4: "four", p5: ""} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", p, got, err, want)
		}
		resp, body := e.envd(c, "GET", "/files?"+q(p), nil, nil)
		if resp.StatusCode != http.StatusOK || string(body) != want || resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Errorf("GET %s: %s %q (Content-Length %q), want %q", p, resp.Status, body, resp.Header.Get("Content-Length"), want)
		}
	}

	for _, tt := range []struct {
		name, method, query string
		want                int
	}{
		{"missing file", "GET", q(filepath.Join(dir, "nope")), http.StatusNotFound},
		{"directory", "GET", q(dir), http.StatusBadRequest},
		{"unknown user", "GET", "path=/etc/hostname&username=mallory", http.StatusUnauthorized},
		{"no path", "POST", "username=root", http.StatusBadRequest},
	} {
		var ae apiErr
		resp, body := e.envd(c, tt.method, "/files?"+tt.query, http.Header{"Content-Type": {"application/octet-stream"}}, strings.NewReader("x"))
		if err := json.Unmarshal(body, &ae); resp.StatusCode != tt.want || err != nil || ae.Code != tt.want {
			t.Errorf("%s: %s %s, want %d", tt.name, resp.Status, body, tt.want)
		}
	}
}

func TestFilesystem(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base"})
	dir := t.TempDir()
	for _, f := range []string{"a/x.txt", "a/b/y.txt", "z.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("z.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, json := range []bool{true, false} {
		_, fs := e.clients(c, json)

		st, err := fs.Stat(ctx(t), connect.NewRequest(&fspb.StatRequest{Path: filepath.Join(dir, "z.txt")}))
		if err != nil {
			t.Fatal(err)
		}
		en := st.Msg.Entry
		if en.Name != "z.txt" || en.Type != fspb.FileType_FILE_TYPE_FILE || en.Path != filepath.Join(dir, "z.txt") ||
			en.Size != 5 || en.Mode != 0o640 || en.Permissions != "-rw-r-----" || en.ModifiedTime.AsTime().IsZero() {
			t.Errorf("Stat: %v", en)
		}
		if _, err := fs.Stat(ctx(t), connect.NewRequest(&fspb.StatRequest{Path: filepath.Join(dir, "nope")})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("Stat of a missing file: %v, want not_found", err)
		}

		list := func(depth uint32) map[string]fspb.FileType {
			t.Helper()
			res, err := fs.ListDir(ctx(t), connect.NewRequest(&fspb.ListDirRequest{Path: dir, Depth: depth}))
			if err != nil {
				t.Fatalf("ListDir depth %d: %v", depth, err)
			}
			got := map[string]fspb.FileType{}
			for _, en := range res.Msg.Entries {
				rel, _ := filepath.Rel(dir, en.Path)
				got[rel] = en.Type
			}
			return got
		}
		F, D, L := fspb.FileType_FILE_TYPE_FILE, fspb.FileType_FILE_TYPE_DIRECTORY, fspb.FileType_FILE_TYPE_SYMLINK
		if got, want := list(1), map[string]fspb.FileType{"a": D, "z.txt": F, "link": L}; !cmp.Equal(got, want) {
			t.Errorf("ListDir depth 1: %v, want %v", got, want)
		}
		if got, want := list(2), map[string]fspb.FileType{"a": D, "a/x.txt": F, "a/b": D, "z.txt": F, "link": L}; !cmp.Equal(got, want) {
			t.Errorf("ListDir depth 2: %v, want %v", got, want)
		}
		if _, err := fs.ListDir(ctx(t), connect.NewRequest(&fspb.ListDirRequest{Path: filepath.Join(dir, "nope")})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("ListDir of a missing directory: %v", err)
		}

		nd := filepath.Join(dir, "new/deep")
		md, err := fs.MakeDir(ctx(t), connect.NewRequest(&fspb.MakeDirRequest{Path: nd}))
		if err != nil || md.Msg.Entry.Type != D {
			t.Fatalf("MakeDir: %v %v", md, err)
		}
		if _, err := fs.MakeDir(ctx(t), connect.NewRequest(&fspb.MakeDirRequest{Path: nd})); connect.CodeOf(err) != connect.CodeAlreadyExists {
			t.Errorf("MakeDir of an existing directory: %v, want already_exists", err)
		}
		mv, err := fs.Move(ctx(t), connect.NewRequest(&fspb.MoveRequest{Source: filepath.Join(dir, "z.txt"), Destination: filepath.Join(dir, "new/z2.txt")}))
		if err != nil || mv.Msg.Entry.Path != filepath.Join(dir, "new/z2.txt") {
			t.Fatalf("Move: %v %v", mv, err)
		}
		if _, err := fs.Move(ctx(t), connect.NewRequest(&fspb.MoveRequest{Source: filepath.Join(dir, "z.txt"), Destination: filepath.Join(dir, "w")})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("Move of a missing file: %v", err)
		}
		if _, err := fs.Remove(ctx(t), connect.NewRequest(&fspb.RemoveRequest{Path: filepath.Join(dir, "new")})); err != nil {
			t.Errorf("Remove: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "new")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Remove: %v", err)
		}
		if _, err := fs.Remove(ctx(t), connect.NewRequest(&fspb.RemoveRequest{Path: filepath.Join(dir, "new")})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("Remove of a missing path: %v", err)
		}
		// restore for the second codec
		os.WriteFile(filepath.Join(dir, "z.txt"), []byte("z.txt"), 0o640)
		os.Chmod(filepath.Join(dir, "z.txt"), 0o640)

		w, err := fs.WatchDir(ctx(t), connect.NewRequest(&fspb.WatchDirRequest{Path: dir}))
		if err == nil {
			w.Receive()
			err = w.Err()
		}
		if connect.CodeOf(err) != connect.CodeUnimplemented {
			t.Errorf("WatchDir: %v, want unimplemented", err)
		}
	}
}
