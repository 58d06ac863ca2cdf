package ruleset

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultNoFilesLimit is SecRequestBodyNoFilesLimit when a ruleset does
// not set it: ModSecurity's default, and the one Coraza documents.
const DefaultNoFilesLimit = 1 << 20

// maxNoFilesLimit is the directive's hard limit in ModSecurity and Coraza's
// documentation.
const maxNoFilesLimit = 1 << 30

// bodyLimits reads the body-handling directives of the ruleset's own files
// that wafcanary must act on itself, and refuses those it cannot honour.
//
// Coraza parses SecRequestBodyNoFilesLimit but does not enforce it
// (corazawaf/coraza#896): without it a form, JSON or XML body is inspected
// up to SecRequestBodyLimit (13 MB in the recommended settings), and CRS
// spends seconds of CPU on a 100 KB body of binary arguments. The proxy
// enforces it instead (verdict.RequestPhases).
//
// SecRequestBodyLimitAction ProcessPartial makes Coraza judge only the
// first SecRequestBodyLimit bytes while the proxy forwards the whole body:
// the rest would reach the upstream unjudged, so it is refused.
func bodyLimits(ds []Directive) (noFiles int64, err error) {
	noFiles = DefaultNoFilesLimit
	for _, d := range ds {
		arg := strings.Trim(strings.TrimSpace(d.Args), `"'`)
		switch strings.ToLower(d.Name) {
		case "secrequestbodynofileslimit":
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil || n < 1 || n > maxNoFilesLimit {
				return 0, fmt.Errorf("%s:%d: SecRequestBodyNoFilesLimit: want a number of bytes from 1 to %d, got %q", d.File, d.Line, maxNoFilesLimit, arg)
			}
			noFiles = n
		case "secrequestbodylimitaction":
			if strings.EqualFold(arg, "ProcessPartial") {
				return 0, fmt.Errorf("%s:%d: SecRequestBodyLimitAction ProcessPartial: Coraza would judge only the first SecRequestBodyLimit bytes of a body while wafcanary forwards all of it, so the rest would reach the upstream unjudged; use Reject", d.File, d.Line)
			}
		}
	}
	return noFiles, nil
}
