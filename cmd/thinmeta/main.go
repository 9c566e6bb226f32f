// Command thinmeta reads, checks and writes Linux dm-thin metadata.
//
// Run "thinmeta help" for the list of commands and "thinmeta help COMMAND"
// for one command's options.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// command is one subcommand of the CLI.
type command struct {
	name    string
	summary string
	usage   string // full help text, man-page style
	run     func(env *env, args []string) int
	// interruptible: the command stops cleanly on SIGINT (its env's ctx
	// is cancelled) and exits exitInterrupted.
	interruptible bool
}

func run(args []string) int { return newEnv().run(args) }

// run runs the command line args (without the program name).
func (e *env) run(args []string) int {
	if len(args) == 0 {
		e.usage(e.stderr)
		return exitUsage
	}
	if args[0] == "--wait" {
		// Global: wait for other processes' locks on a pool.
		waitLocks = true
		if args = args[1:]; len(args) == 0 {
			e.usage(e.stderr)
			return exitUsage
		}
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		if len(args) == 1 {
			e.usage(e.stdout)
			return exitOK
		}
		c := lookup(args[1])
		if c == nil {
			fmt.Fprintf(e.stderr, "thinmeta: no help for %q: no such command\n", args[1])
			fmt.Fprint(e.stderr, "Run \"thinmeta help\" for the list of commands.\n")
			return exitUsage
		}
		if c == poolCommand && len(args) > 2 {
			// "thinmeta help pool thin": a pool subcommand's help
			return runPool(e, []string{"help", args[2]})
		}
		if len(args) > 2 {
			fmt.Fprintf(e.stderr, "thinmeta: no help for %q: help takes one COMMAND (and a pool SUBCOMMAND)\n", strings.Join(args[1:], " "))
			return exitUsage
		}
		fmt.Fprint(e.stdout, c.usage)
		return exitOK
	}
	if name == "-V" || name == "--version" || name == "version" {
		fmt.Fprintln(e.stdout, version)
		return exitOK
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(e.stderr, "thinmeta: unknown command %q\n", name)
		e.usage(e.stderr)
		return exitUsage
	}
	if !c.interruptible {
		return c.run(e, args[1:])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	context.AfterFunc(ctx, stop) // a second SIGINT kills at once
	e.ctx = ctx
	code := c.run(e, args[1:])
	if ctx.Err() != nil && code != exitOK {
		return exitInterrupted
	}
	return code
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}
