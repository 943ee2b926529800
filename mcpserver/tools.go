package mcpserver

import "github.com/modelcontextprotocol/go-sdk/mcp"

// Tool names: petty's original ten, then the additions (aliases where
// noted).
const (
	ToolCreateSandbox    = "create_sandbox"
	ToolDestroySandbox   = "destroy_sandbox"
	ToolListSandboxes    = "list_sandboxes"
	ToolRunCommand       = "run_command"
	ToolExecuteCode      = "execute_code"
	ToolReadFile         = "read_file"
	ToolWriteFile        = "write_file"
	ToolListDirectory    = "list_directory"
	ToolGetProcessOutput = "get_process_output"
	ToolKillProcess      = "kill_process"

	ToolStartProcess  = "start_process"
	ToolExtendTimeout = "extend_timeout"
)

func (s *Server) addTools() {
	m := s.mcp
	mcp.AddTool(m, &mcp.Tool{Name: ToolCreateSandbox, Description: "Create a sandbox: a fresh microVM. Returns its sandbox_id. It is destroyed after timeout_s (default 600), by destroy_sandbox, or when this session ends."}, s.createSandbox)
	mcp.AddTool(m, &mcp.Tool{Name: ToolDestroySandbox, Description: "Destroy a sandbox and everything in it."}, s.destroySandbox)
	mcp.AddTool(m, &mcp.Tool{Name: ToolListSandboxes, Description: "List the live sandboxes."}, s.listSandboxes)
	runDesc := "Run a command in a sandbox and return exit_code, stdout, stderr (capped: truncated says so) and timed_out. command is an argv array, or a string run with sh -c. With background: true, return the pid of a background process instead."
	mcp.AddTool(m, &mcp.Tool{Name: ToolRunCommand, Description: runDesc}, s.runCommand)
	codeDesc := "Run a program in python, javascript (node) or bash: the code is written to a file in the sandbox and run by the interpreter. Returns exit_code, stdout, stderr, truncated, timed_out."
	mcp.AddTool(m, &mcp.Tool{Name: ToolExecuteCode, Description: codeDesc}, s.executeCode)
	mcp.AddTool(m, &mcp.Tool{Name: ToolReadFile, Description: "Read a file of a sandbox (utf-8 text, or base64 for binary files)."}, s.readFile)
	mcp.AddTool(m, &mcp.Tool{Name: ToolWriteFile, Description: "Write a file in a sandbox, creating its parent directories."}, s.writeFile)
	lsDesc := "List a directory of a sandbox."
	mcp.AddTool(m, &mcp.Tool{Name: ToolListDirectory, Description: lsDesc}, s.listDirectory)
	mcp.AddTool(m, &mcp.Tool{Name: ToolStartProcess, Description: "Start a background process in a sandbox; returns its pid for get_process_output and kill_process."}, s.startProcess)
	mcp.AddTool(m, &mcp.Tool{Name: ToolGetProcessOutput, Description: "Get a background process's output so far (the last 1 MiB of each stream), whether it runs, and its exit code once done."}, s.getProcessOutput)
	mcp.AddTool(m, &mcp.Tool{Name: ToolKillProcess, Description: "Kill a background process and its process group."}, s.killProcess)
	mcp.AddTool(m, &mcp.Tool{Name: ToolExtendTimeout, Description: "Set a sandbox's remaining lifetime to timeout_s seconds from now."}, s.extendTimeout)
}
