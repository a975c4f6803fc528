// Command pause is the pod sandbox's process (containerd's sandbox_image on the test node): it
// holds the pod's namespaces open and does nothing else. As PID 1 of the sandbox it reaps any
// child handed to it (processes that share the pod's PID namespace), and it exits on SIGINT or
// SIGTERM, which is how the runtime stops a sandbox.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Several children may have exited behind one SIGCHLD: reap until none is left.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
