// Command wafcanary is a reverse proxy that rolls out WAF rule changes as a
// measured canary: a baseline and a candidate ruleset side by side.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/wafcanary/wafcanary/node"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, documented in the README.
const (
	exitOK             = 0
	exitFailure        = 1  // the server failed at run time
	exitUsage          = 64 // bad flags or configuration (sysexits EX_USAGE); 2 is left to Go, which exits 2 on a panic
	exitInvalidRuleset = 3  // a ruleset did not compile
	exitConflict       = 4  // the request conflicts with the rollout's state
	exitUnauthorized   = 5  // missing or wrong admin token
	exitUnreachable    = 6  // the admin API could not be reached
	exitRefused        = 7  // the candidate failed its gates
	exitRolledBack     = 8  // status --wait: the rollout was rolled back
	exitWaitTimeout    = 9  // status --wait: --timeout passed first
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCmd().ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wafcanary:", err)
	}
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	var (
		inv          node.InvalidRulesetError
		usage        errUsage
		conflict     errConflict
		unauthorized errUnauthorized
		unreachable  errUnreachable
		refused      errRefused
	)
	if errors.As(err, new(errRolledBack)) {
		return exitRolledBack
	}
	if errors.As(err, new(errWaitTimeout)) {
		return exitWaitTimeout
	}
	var replayed errReplayVerdict
	if errors.As(err, &replayed) {
		if replayed.verdict == "fail" {
			return exitReplayFail
		}
		return exitReplayInconclusive
	}
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &inv), errors.As(err, new(errInvalidRuleset)):
		return exitInvalidRuleset
	case errors.As(err, &conflict):
		return exitConflict
	case errors.As(err, &unauthorized):
		return exitUnauthorized
	case errors.As(err, &unreachable):
		return exitUnreachable
	case errors.As(err, &refused):
		return exitRefused
	case errors.As(err, &usage):
		return exitUsage
	}
	return exitFailure
}

// errInvalidRuleset marks a ruleset that failed to compile, for the exit code.
type errInvalidRuleset struct{ error }

func (e errInvalidRuleset) Unwrap() error { return e.error }

// errUsage marks bad flags or configuration, for the exit code.
type errUsage struct{ error }

func (e errUsage) Unwrap() error { return e.error }

// errRefused marks a candidate that failed its gates, for the exit code.
type errRefused struct{ error }

func (e errRefused) Unwrap() error { return e.error }
