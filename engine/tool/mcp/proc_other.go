//go:build !unix

package mcp

import "os/exec"

// newProcessGroup does nothing: process groups are a Unix notion.
func newProcessGroup(*exec.Cmd) {}

// terminateProcessGroup does nothing: there is no SIGTERM to send. The
// server is killed after the grace period.
func terminateProcessGroup(*exec.Cmd) {}

// killProcessGroup kills the server process if it is still running; its
// children cannot be reached without process groups.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill() // fails harmlessly once the process was waited for
	}
}
