package e2bserver

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"

	"github.com/pettyvm/petty/sandbox"
)

// writtenFile is an entry of POST /files' answer.
type writtenFile struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Path string `json:"path"`
}

// fileStatus maps a file error to an HTTP status.
func fileStatus(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound
	case errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, fs.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, sandbox.ErrClosed):
		return http.StatusBadGateway
	default:
		return statusOf(err)
	}
}

// queryUser is the user of a /files call (its username parameter).
func queryUser(w http.ResponseWriter, r *http.Request) (user, bool) {
	u, err := lookupUser(r.URL.Query().Get("username"))
	if err != nil {
		writeError(w, http.StatusUnauthorized, err.Error())
		return user{}, false
	}
	return u, true
}

// getFile answers GET /files?path=…: the file's bytes, streamed, with its
// length (0 for an empty file, which the SDKs check).
func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	u, ok := queryUser(w, r)
	if !ok {
		return
	}
	sb := sandboxFrom(r.Context())
	p := u.abs(r.URL.Query().Get("path"))
	fi, err := sb.Stat(r.Context(), p)
	if err != nil {
		writeError(w, fileStatus(err), fmt.Sprintf("%s: %v", p, err))
		return
	}
	if fi.IsDir {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s is a directory", p))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": path.Base(p)}))
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size, 10))
	if r.Method == http.MethodHead {
		return
	}
	if _, err := sb.CopyFrom(r.Context(), p, w); err != nil {
		// The status is sent: cut the response short so the client
		// sees a truncated body, not a short file.
		s.log.Warn("e2b: reading a file", "sandbox", sb.ID(), "path", p, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// postFile answers POST /files: a multipart body (parts "file", each
// written to the path query parameter or its own file name) or, from envd
// 0.5.7, the raw bytes of one file (application/octet-stream, gzip allowed).
func (s *Server) postFile(w http.ResponseWriter, r *http.Request) {
	u, ok := queryUser(w, r)
	if !ok {
		return
	}
	sb := sandboxFrom(r.Context())
	qpath := r.URL.Query().Get("path")
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var out []writtenFile
	write := func(name string, body io.Reader) bool {
		p := u.abs(name)
		if err := writeAs(r.Context(), sb, u, p, body); err != nil {
			writeError(w, fileStatus(err), fmt.Sprintf("writing %s: %v", p, err))
			return false
		}
		out = append(out, writtenFile{Name: path.Base(p), Type: "file", Path: p})
		return true
	}
	switch ct {
	case "multipart/form-data":
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("multipart body: %v", err))
				return
			}
			if part.FormName() != "file" {
				continue
			}
			name := qpath
			if name == "" {
				// The raw file name: Part.FileName drops directories.
				_, dp, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
				name = dp["filename"]
			}
			if name == "" {
				writeError(w, http.StatusBadRequest, "a file part without a path")
				return
			}
			if !write(name, part) {
				return
			}
		}
	default:
		if qpath == "" {
			writeError(w, http.StatusBadRequest, "the path parameter is required")
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("gzip body: %v", err))
				return
			}
			body = zr
		}
		if !write(qpath, body) {
			return
		}
	}
	if len(out) == 0 {
		writeError(w, http.StatusBadRequest, "no file in the request")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// writeAs writes the file p from body as u: created with the directories
// it needs, all of them (and the file) owned by u when u is not root.
func writeAs(ctx context.Context, sb *sandbox.Sandbox, u user, p string, body io.Reader) error {
	var created []string
	if u.name != rootUser {
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if _, err := sb.Stat(ctx, dir); err == nil {
				break
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			created = append(created, dir)
		}
		if _, err := sb.Stat(ctx, p); errors.Is(err, fs.ErrNotExist) {
			created = append(created, p)
		}
	}
	if _, err := sb.CopyTo(ctx, p, body, 0o644); err != nil {
		return err
	}
	if len(created) == 0 {
		return nil
	}
	return guestCommand(ctx, sb, user{name: rootUser}, "chown", p, append([]string{"chown", u.name + ":", "--"}, created...)...)
}
