package pm

import "github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"

// Automaton is op's evaluation without the literal search in front: what
// Coraza's own operator does.
func Automaton(op plugintypes.Operator) func(plugintypes.TransactionState, string) bool {
	return op.(*Operator).automaton
}

// Built reports whether op's automaton has been built.
func Built(op plugintypes.Operator) bool { return op.(*Operator).built.Load() }
