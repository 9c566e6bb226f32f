package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const version = "0.1.0"

// Exit codes shared by all commands.
const (
	exitOK = 0
	// exitFail: the command ran and found a problem (damaged metadata,
	// a failed check), or could not do what was asked.
	exitFail = 1
	// exitUsage: the command line was wrong.
	exitUsage = 2
	// exitTrouble: for reconcile and blob find, whose 1 is an answer,
	// the command could not run (as diff and grep exit 2).
	exitTrouble = 2
	// exitInterrupted: a long command (check, dump, ls, restore) stopped
	// on SIGINT, as a shell reports a process killed by it (128 + 2).
	exitInterrupted = 130
)

type env struct {
	// ctx is cancelled when the command is to stop (see interruptible).
	ctx            context.Context
	stdout, stderr io.Writer
	stdin          io.Reader
	isTerminal     func(f *os.File) bool
}

// context returns e.ctx, or a context never cancelled if it is nil.
func (e *env) context() context.Context {
	if e.ctx == nil {
		return context.Background()
	}
	return e.ctx
}

func newEnv() *env {
	return &env{ctx: context.Background(), stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, isTerminal: isTerminal}
}

func commands() []*command {
	return []*command{
		checkCommand, dumpCommand, repairCommand, lsCommand, rmapCommand, deltaCommand,
		formatCommand, messageCommand, packCommand, unpackCommand, restoreCommand, generateCommand,
		blobCommand, convertCommand, reconcileCommand, poolCommand, metadataSizeCommand,
	}
}

func (e *env) usage(w io.Writer) {
	fmt.Fprint(w, `Usage: thinmeta [--wait] COMMAND [options] ARGS

thinmeta reads, checks and writes Linux dm-thin pool metadata (the
metadata device of a dm-thin pool) without the kernel.

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "thinmeta help COMMAND" for the options of a command.

Locking: a command that reads a pool file holds a shared lock on it, one
that writes or replaces it an exclusive lock (flock). A command that
meets a conflicting lock fails at once ("locked by another process");
with --wait it waits for the lock instead.
Exit status: 0 success, 1 failure (damaged metadata, failed check, I/O
error), 2 bad usage, 130 interrupted (SIGINT stops check, dump, ls and
restore cleanly; restore then leaves no pool on its output).
`)
}

// flagSet makes a FlagSet for a command whose -h prints the command's
// usage text.
func (e *env) flagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args, allowing options after positional arguments (as
// getopt does). It returns the positional arguments, or an exit code when
// parsing failed or help was printed.
func (e *env) parse(c *command, fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(e.stdout, c.usage)
				return nil, exitOK, false
			}
			fmt.Fprintf(e.stderr, "thinmeta %s: %v\n", c.name, err)
			fmt.Fprintf(e.stderr, "Run \"thinmeta help %s\" for usage.\n", c.name)
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0, true
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), 0, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (e *env) usageError(c *command, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "thinmeta %s: %s\n", c.name, fmt.Sprintf(format, args...))
	fmt.Fprintf(e.stderr, "Run \"thinmeta help %s\" for usage.\n", c.name)
	return exitUsage
}

// synopsisError is the usage error of a command or verb given the wrong
// number of arguments: it shows the synopsis its help gives.
func (e *env) synopsisError(c *command, synopsis string) int {
	verb, _, _ := strings.Cut(synopsis, " ")
	fmt.Fprintf(e.stderr, "thinmeta %s: wrong number of arguments for %s\n", c.name, verb)
	fmt.Fprintf(e.stderr, "Usage: thinmeta %s %s\n", c.name, synopsis)
	fmt.Fprintf(e.stderr, "Run \"thinmeta help %s\" for more.\n", c.name)
	return exitUsage
}

func (e *env) fail(c *command, err error) int {
	if errors.Is(err, context.Canceled) {
		err = errors.New("interrupted") // SIGINT (see command.interruptible)
	}
	fmt.Fprintf(e.stderr, "thinmeta %s: %v\n", c.name, err)
	return exitFail
}

// trouble reports an error as fail does, for the commands whose exit
// status 1 is an answer (reconcile's "they differ", as diff's; blob
// find's "no match", as grep's): trouble is 2.
func (e *env) trouble(c *command, err error) int {
	e.fail(c, err)
	return exitTrouble
}

// boolFlag registers a boolean option under several names (e.g. "m" and
// "metadata-snap").
func boolFlag(fs *flag.FlagSet, p *bool, usage string, names ...string) {
	for _, n := range names {
		fs.BoolVar(p, n, false, usage)
	}
}

func stringFlag(fs *flag.FlagSet, p *string, usage string, names ...string) {
	for _, n := range names {
		fs.StringVar(p, n, "", usage)
	}
}
