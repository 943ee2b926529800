// Package mcpserver serves a sandbox.Manager over the Model Context
// Protocol, with github.com/modelcontextprotocol/go-sdk: a thin adapter
// whose tools map onto sandbox calls.
//
// The tools keep the names and fields of petty's original MCP server
// (create_sandbox, destroy_sandbox, list_sandboxes, run_command,
// execute_code, read_file, write_file, list_directory, get_process_output,
// kill_process), so that its clients work unchanged, and add exec,
// run_code, list_dir, start_process and extend_timeout.
//
// Every result comes as structured content and as a JSON text block, so a
// message carries its payload twice, escaped twice: output and file
// contents are capped by their encoded size (see MaxEncodedPayload) so
// that a message stays well under the 10 MiB at which MCP clients drop a
// stdio connection, with truncated: true where output was cut.
package mcpserver
