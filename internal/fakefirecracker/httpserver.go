package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
)

// response is one API answer.
type response struct {
	status int
	body   []byte // JSON; nil for 204
	close  bool   // close the connection after writing
}

func noContent() response { return response{status: http.StatusNoContent} }

func jsonResponse(v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		return faultResponse(fmt.Errorf("internal error: %w", err))
	}
	return response{status: http.StatusOK, body: b}
}

func faultResponse(err error) response {
	b, _ := json.Marshal(struct {
		FaultMessage string `json:"fault_message"`
	}{err.Error()})
	return response{status: http.StatusBadRequest, body: b}
}

// serveAPI serves HTTP/1.1 on ln. Like Firecracker's micro_http it keeps every
// connection alive (a "Connection: close" header is ignored) and frames
// bodies with Content-Length.
func serveAPI(ln *net.UnixListener, v *vmm) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		go serveConn(c, v)
	}
}

func serveConn(c net.Conn, v *vmm) {
	defer c.Close()
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				writeResponse(bw, faultResponse(fmt.Errorf("Invalid HTTP request: %v", err)))
			}
			return
		}
		resp := readAndHandle(req, v)
		if err := writeResponse(bw, resp); err != nil || resp.close {
			return
		}
	}
}

func readAndHandle(req *http.Request, v *vmm) response {
	limit := int64(v.opts.maxPayloadSize)
	if req.ContentLength > limit {
		r := faultResponse(fmt.Errorf("Request payload with size %d is larger than the limit of %d allowed by server.\nAll previous unanswered requests will be dropped.", req.ContentLength, limit))
		r.close = true
		return r
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		r := faultResponse(fmt.Errorf("Invalid HTTP request body: %v", err))
		r.close = true
		return r
	}
	if int64(len(body)) > limit {
		r := faultResponse(fmt.Errorf("Request payload with size %d is larger than the limit of %d allowed by server.", len(body), limit))
		r.close = true
		return r
	}
	return v.handle(req.Method, req.URL.Path, body)
}

func writeResponse(bw *bufio.Writer, r response) error {
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n", r.status, http.StatusText(r.status))
	if r.status != http.StatusNoContent {
		bw.WriteString("Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(r.body)) + "\r\n")
	}
	bw.WriteString("\r\n")
	bw.Write(r.body)
	return bw.Flush()
}
