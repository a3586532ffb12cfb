package main

import (
	"io"
	"os"
)

// runCommand runs the commands beside serve, migrate and version: the
// client commands, check-message and demo. ok is false for an unknown name.
func runCommand(name string, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	if cc, ok := clientCommands()[name]; ok {
		return cc.run(args, stdout, stderr, os.Getenv), true
	}
	switch name {
	case "check-message":
		return checkMessage(args, stdout, stderr, os.Getenv), true
	case "demo":
		return runDemo(args, stdout, stderr), true
	}
	return 0, false
}
