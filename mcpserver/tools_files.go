package mcpserver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/sandbox"
)

// MaxWriteFile is the largest content write_file takes (decoded).
const MaxWriteFile = 8 << 20

// ReadInput are read_file's arguments.
type ReadInput struct {
	SandboxID string `json:"sandbox_id"`
	Path      string `json:"path"`
	Encoding  string `json:"encoding,omitempty" jsonschema:"utf-8 (default) or base64 (for binary files)"`
}

// ReadOutput is read_file's result.
type ReadOutput struct {
	Content  string `json:"content"`
	Encoding string `json:"encoding"`
	Size     int64  `json:"size"`
}

// WriteInput are write_file's arguments.
type WriteInput struct {
	SandboxID string `json:"sandbox_id"`
	Path      string `json:"path"`
	Content   string `json:"content"`
	Encoding  string `json:"encoding,omitempty" jsonschema:"utf-8 (default) or base64"`
	Mode      string `json:"mode,omitempty" jsonschema:"permission bits in octal, e.g. 0755 (default 0644)"`
}

// WriteOutput is write_file's result.
type WriteOutput struct {
	Success bool  `json:"success"`
	Size    int64 `json:"size"`
}

// PathInput names a path in a sandbox.
type PathInput struct {
	SandboxID string `json:"sandbox_id"`
	Path      string `json:"path"`
}

// Entry is one directory entry.
type Entry struct {
	Name  string `json:"name"`
	IsDir bool   `json:"is_dir"`
	Size  int64  `json:"size"`
	Mode  string `json:"mode,omitempty"`
}

// ListDirOutput is list_directory's result.
type ListDirOutput struct {
	Entries   []Entry `json:"entries"`
	Truncated bool    `json:"truncated,omitempty"`
}

// maxEntries bounds a listing (each entry costs some 100 encoded bytes).
const maxEntries = 10000

// fileErr explains a file error to the model.
func fileErr(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such file or directory", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied", path)
	case errors.Is(err, sandbox.ErrTooLarge):
		return fmt.Errorf("%s: too large for one message (over %d bytes): read it in parts with run_command (e.g. head -c / tail -c)", path, MaxReadFile)
	}
	return fmt.Errorf("%s: %w", path, err)
}

func (s *Server) readFile(ctx context.Context, _ *mcp.CallToolRequest, in ReadInput) (*mcp.CallToolResult, ReadOutput, error) {
	sb, err := s.sandbox(in.SandboxID)
	if err != nil {
		return nil, ReadOutput{}, err
	}
	enc := in.Encoding
	switch enc {
	case "", "utf-8", "utf8":
		enc = "utf-8"
	case "base64":
	default:
		return nil, ReadOutput{}, fmt.Errorf("encoding %q: want utf-8 or base64", in.Encoding)
	}
	if in.Path == "" {
		return nil, ReadOutput{}, errors.New("path is required")
	}
	data, err := sb.ReadFile(ctx, in.Path, MaxReadFile)
	if err != nil {
		return nil, ReadOutput{}, fileErr(in.Path, err)
	}
	if enc == "base64" {
		return nil, ReadOutput{Content: base64.StdEncoding.EncodeToString(data), Encoding: enc, Size: int64(len(data))}, nil
	}
	if !utf8.Valid(data) {
		return nil, ReadOutput{}, fmt.Errorf("%s is not valid UTF-8 text: read it with encoding base64", in.Path)
	}
	text, _, cut := capText(data, MaxEncodedPayload)
	if cut {
		return nil, ReadOutput{}, fmt.Errorf("%s: too large for one message once encoded: read it with encoding base64", in.Path)
	}
	return nil, ReadOutput{Content: text, Encoding: enc, Size: int64(len(data))}, nil
}

func (s *Server) writeFile(ctx context.Context, _ *mcp.CallToolRequest, in WriteInput) (*mcp.CallToolResult, WriteOutput, error) {
	sb, err := s.sandbox(in.SandboxID)
	if err != nil {
		return nil, WriteOutput{}, err
	}
	if in.Path == "" {
		return nil, WriteOutput{}, errors.New("path is required")
	}
	var data []byte
	switch in.Encoding {
	case "", "utf-8", "utf8":
		data = []byte(in.Content)
	case "base64":
		if data, err = base64.StdEncoding.DecodeString(in.Content); err != nil {
			return nil, WriteOutput{}, fmt.Errorf("content is not valid base64: %w", err)
		}
	default:
		return nil, WriteOutput{}, fmt.Errorf("encoding %q: want utf-8 or base64", in.Encoding)
	}
	if len(data) > MaxWriteFile {
		return nil, WriteOutput{}, fmt.Errorf("content is %d bytes, over the %d-byte limit of one call", len(data), MaxWriteFile)
	}
	perm := fs.FileMode(0o644)
	if in.Mode != "" {
		m, err := strconv.ParseUint(in.Mode, 8, 32)
		if err != nil || m > 0o7777 {
			return nil, WriteOutput{}, fmt.Errorf("mode %q: want octal permission bits such as 0644", in.Mode)
		}
		perm = fs.FileMode(m)
	}
	if err := sb.WriteFile(ctx, in.Path, data, perm); err != nil {
		return nil, WriteOutput{}, fileErr(in.Path, err)
	}
	return nil, WriteOutput{Success: true, Size: int64(len(data))}, nil
}

func (s *Server) listDirectory(ctx context.Context, _ *mcp.CallToolRequest, in PathInput) (*mcp.CallToolResult, ListDirOutput, error) {
	sb, err := s.sandbox(in.SandboxID)
	if err != nil {
		return nil, ListDirOutput{}, err
	}
	if in.Path == "" {
		return nil, ListDirOutput{}, errors.New("path is required")
	}
	ents, err := sb.ListDir(ctx, in.Path)
	if err != nil {
		return nil, ListDirOutput{}, fileErr(in.Path, err)
	}
	out := ListDirOutput{Entries: make([]Entry, 0, min(len(ents), maxEntries))}
	for i, e := range ents {
		if i == maxEntries {
			out.Truncated = true
			break
		}
		out.Entries = append(out.Entries, Entry{Name: toValidUTF8([]byte(e.Name)), IsDir: e.IsDir, Size: e.Size, Mode: e.Mode.String()})
	}
	return nil, out, nil
}
