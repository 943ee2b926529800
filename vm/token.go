package vm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pettyvm/petty/agent/wire"
)

// The agent's per-boot token.
//
// Every boot gets a fresh 128-bit secret. The guest learns it from its
// kernel command line (petty.token=), which reaches the VMM through files
// only the owner can read: Firecracker's --config-file or API socket, and
// QEMU's -readconfig file (QEMU's own argv is world-readable). Every
// connection to the agent must present it (agent.Authenticate), so that a
// local user who can reach the agent's channel (a vhost-vsock CID is open to
// all) cannot drive it. The token is also kept in the run directory, in
// AgentTokenFile, for processes that attach to the VM later.

// AgentTokenFile is the name, in a VM's run directory, of the file (mode
// 0600) holding the current boot's agent token.
const AgentTokenFile = "agent.token"

const (
	tokenParam = wire.TokenArg
	tokenBytes = 16
	// tokenParamLen is what the token adds to the kernel command line.
	tokenParamLen = len(" "+tokenParam) + 2*tokenBytes
)

// newAgentToken makes a fresh token and writes it to the run directory's
// AgentTokenFile, replacing the previous boot's.
func newAgentToken(runDir string) (string, error) {
	var raw [tokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("agent token: %w", err)
	}
	tok := hex.EncodeToString(raw[:])
	return tok, writeAgentToken(runDir, tok)
}

// writeAgentToken writes tok to the run directory's AgentTokenFile,
// replacing the previous boot's.
func writeAgentToken(runDir, tok string) error {
	path := filepath.Join(runDir, AgentTokenFile)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agent token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("agent token: %w", err)
	}
	_, err = f.WriteString(tok + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("agent token: %w", err)
	}
	return nil
}

// ReadAgentToken returns the agent token of the VM whose run directory is
// runDir (see AgentTokenFile).
func ReadAgentToken(runDir string) (string, error) {
	return wire.ReadTokenFile(filepath.Join(runDir, AgentTokenFile))
}

// withToken returns a kernel command line with the token appended.
func withToken(cmdline, tok string) string {
	if cmdline == "" {
		return tokenParam + tok
	}
	return cmdline + " " + tokenParam + tok
}
