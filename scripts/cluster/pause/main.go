// Command pause is the sandbox ("pause") container of every pod: it holds the pod's
// namespaces, exits cleanly on SIGINT/SIGTERM and reaps children it inherits. No image
// registry is reachable here, so the usual registry.k8s.io/pause image is built locally.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
