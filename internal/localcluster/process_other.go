//go:build !linux

package localcluster

import "os/exec"

// setDeathSignal is a no-op where Pdeathsig does not exist; Stop must be
// called to end the children.
func setDeathSignal(*exec.Cmd) {}
