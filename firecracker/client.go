package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// DefaultTimeout is the per-call timeout NewClient sets on Client.Timeout.
const DefaultTimeout = 5 * time.Second

// maxResponseBytes bounds how much of a response body the client reads.
const maxResponseBytes = 1 << 20

// Client talks to one Firecracker process over its API socket. It is safe for
// concurrent use. Create it with NewClient.
type Client struct {
	// Timeout bounds every call whose ctx has no earlier deadline.
	// NewClient sets it to DefaultTimeout; zero or negative disables it.
	Timeout time.Duration

	socketPath string
	transport  *http.Transport
	http       *http.Client
}

// NewClient returns a Client for the Firecracker API socket at socketPath.
// It does not connect: the first call dials, later calls reuse the connection.
func NewClient(socketPath string) *Client {
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConns:        2,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{
		Timeout:    DefaultTimeout,
		socketPath: socketPath,
		transport:  t,
		http:       &http.Client{Transport: t},
	}
}

// Close closes the client's idle connections. It is idempotent; a call made
// after Close dials a new connection.
func (c *Client) Close() error {
	c.transport.CloseIdleConnections()
	return nil
}

// do sends one request. in, when non-nil, is sent as the JSON body; out, when
// non-nil, receives the JSON body of a 2xx answer.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	op := method + " " + path
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("firecracker: %s: encoding request: %w", op, err)
		}
		// A *bytes.Reader makes net/http send Content-Length, never chunked.
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost"+path, body)
	if err != nil {
		return fmt.Errorf("firecracker: %s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("firecracker: %s: %w", op, unwrapURLError(err))
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("firecracker: %s: reading response: %w", op, unwrapURLError(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(op, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("firecracker: %s: decoding response: %w", op, err)
		}
	}
	return nil
}

// unwrapURLError drops net/http's *url.Error layer, whose message repeats the
// method and a URL that means nothing for a unix socket.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// pathWithID returns prefix followed by the path-escaped id.
func pathWithID(prefix, id string) string {
	return prefix + url.PathEscape(id)
}
