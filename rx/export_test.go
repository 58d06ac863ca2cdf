package rx

import "github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"

// Prefilter is the operator's prefilter for an @rx argument, for the
// external tests: nil when the operator has none (including byte patterns).
func Prefilter(argument string) (mayMatch func(string) bool, minLen int, lits []string) {
	op, err := New(plugintypes.OperatorOptions{Arguments: argument})
	if err != nil {
		panic(err)
	}
	o, ok := op.(*Operator)
	if !ok || o.pre == nil {
		return nil, 0, nil
	}
	if l := o.pre.lits; l != nil {
		lits = l.Members()
	}
	return o.pre.mayMatch, o.pre.minLen, lits
}
