// Command petty boots microVMs (Firecracker, or QEMU) and runs commands in
// them through the guest agent. Run "petty help" for the commands.
package main

import "os"

func main() {
	os.Exit(newApp(os.Stdin, os.Stdout, os.Stderr).execute(os.Args[1:]))
}
