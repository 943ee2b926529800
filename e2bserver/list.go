package e2bserver

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pettyvm/petty/sandbox"
)

// Page sizes of the listing (the API's paginationLimit).
const (
	defaultPageSize = 100
	maxPageSize     = 100
)

// NextTokenHeader announces the cursor of the next page of a listing.
const NextTokenHeader = "X-Next-Token"

// cursor is where a page starts: the first sandbox created at or after
// created (ties broken by id). It survives the removal of the sandbox it
// names.
type cursor struct {
	created time.Time
	id      string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.created.UTC().Format(time.RFC3339Nano) + " " + c.id))
}

func parseCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, fmt.Errorf("invalid nextToken: %w", err)
	}
	ts, id, ok := strings.Cut(string(b), " ")
	if !ok {
		return cursor{}, fmt.Errorf("invalid nextToken")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return cursor{}, fmt.Errorf("invalid nextToken: %w", err)
	}
	return cursor{created: t, id: id}, nil
}

// isBefore reports whether the sandbox in sorts before c.
func (c cursor) isBefore(in sandbox.Info) bool {
	if d := in.CreatedAt.Compare(c.created); d != 0 {
		return d < 0
	}
	return in.ID < c.id
}

// list answers GET /sandboxes and GET /v2/sandboxes: a bare JSON array of
// the running sandboxes, oldest first, matching the metadata query
// ("k=v&k2=v2" of URL-encoded keys and values, URL-encoded) and states; limit and nextToken page it, the
// X-Next-Token header naming the next page when there is one.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var labels map[string]string
	if m := q.Get("metadata"); m != "" {
		vals, err := url.ParseQuery(m)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid metadata query: %v", err))
			return
		}
		// The pairs' keys and values are URL-encoded once more.
		labels = map[string]string{}
		for k, v := range vals {
			dk, err1 := url.PathUnescape(k)
			dv, err2 := url.PathUnescape(v[len(v)-1])
			if err := errors.Join(err1, err2); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid metadata query: %v", err))
				return
			}
			labels[dk] = dv
		}
	}
	if st := q.Get("state"); st != "" {
		running := false
		for _, one := range strings.Split(st, ",") {
			running = running || one == "running"
		}
		if !running { // petty never pauses a sandbox
			writeJSON(w, http.StatusOK, []listedSandbox{})
			return
		}
	}
	limit := defaultPageSize
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be 1..%d", maxPageSize))
			return
		}
		limit = n
	}
	var from *cursor
	if t := q.Get("nextToken"); t != "" {
		c, err := parseCursor(t)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		from = &c
	}
	out := []listedSandbox{}
	for _, sb := range s.mgr.List(labels) {
		in := sb.Info()
		if in.State != "running" || (from != nil && from.isBefore(in)) {
			continue
		}
		if len(out) == limit {
			w.Header().Set(NextTokenHeader, cursor{created: in.CreatedAt, id: in.ID}.String())
			break
		}
		out = append(out, s.listed(sb))
	}
	writeJSON(w, http.StatusOK, out)
}
