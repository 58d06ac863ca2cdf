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
	if o.pre.lits != nil {
		for _, set := range o.pre.lits.long {
			lits = append(lits, set...)
		}
		for c := range 128 {
			if o.pre.lits.single[c>>6]&(1<<(c&63)) != 0 {
				lits = append(lits, string(rune(c)))
			}
		}
	}
	return o.pre.mayMatch, o.pre.minLen, lits
}
