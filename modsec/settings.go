package modsec

import (
	"fmt"
	"strings"
)

// Debian's paths: the unicode map both ModSecurity packages read.
const (
	// UnicodeMap is nginx's copy of ModSecurity's unicode.mapping
	// (package nginx-common, with libnginx-mod-http-modsecurity).
	UnicodeMap = "/etc/nginx/unicode.mapping"
)

// Audit log types, SecAuditLogType's words.
const (
	Serial     = "Serial"
	Concurrent = "Concurrent"
)

// AuditLog asks for an audit log of every transaction, in JSON.
type AuditLog struct {
	// Type is Serial (one file, a transaction a line) or Concurrent (an
	// index file, a file per transaction under StorageDir).
	Type string
	// File is the log (Serial) or the index (Concurrent).
	File string
	// StorageDir holds a Concurrent log's transactions.
	StorageDir string
	// Parts is SecAuditLogParts; "" is ABCFHZ: request headers and body,
	// response headers, the messages.
	Parts string
	// Relevant logs only the transactions with a warning or an error
	// (SecAuditEngine RelevantOnly) rather than every one.
	Relevant bool
}

// Settings are the ModSecurity directives before the CRS.
type Settings struct {
	// TmpDir is SecTmpDir and SecDataDir.
	TmpDir string
	// UnicodeMap is SecUnicodeMapFile's file ("" for UnicodeMap).
	UnicodeMap string
	// Includes are included after the settings (CRSIncludes).
	Includes []string
	// Audit, when set, turns the audit log on.
	Audit *AuditLog
}

// Config mirrors wafcanary's baseline as closely as ModSecurity allows:
// Coraza's recommended settings (request and response body access, the
// same MIME types and limits, JSON and XML body processors), rule engine
// On (blocking), and the included CRS with its default paranoia level 1
// and anomaly thresholds (inbound 5, outbound 4). The same text loads in
// libmodsecurity v3 and mod_security2.
func Config(s Settings) string {
	var inc strings.Builder
	for _, f := range s.Includes {
		fmt.Fprintf(&inc, "Include %s\n", f)
	}
	umap := s.UnicodeMap
	if umap == "" {
		umap = UnicodeMap
	}
	return fmt.Sprintf(`SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" \
     "id:'200000',phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" \
     "id:'200001',phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "^application/[a-z0-9.-]+[+]json" \
     "id:'200006',phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecRule REQBODY_ERROR "!@eq 0" \
    "id:'200002', phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" \
    "id:'200003',phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation.'"
SecPcreMatchLimit 1000
SecPcreMatchLimitRecursion 1000
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml
SecResponseBodyLimit 524288
SecResponseBodyLimitAction ProcessPartial
SecTmpDir %[1]s
SecDataDir %[1]s
%[2]sSecArgumentSeparator &
SecCookieFormat 0
SecUnicodeMapFile %[3]s 20127
SecStatusEngine Off
%[4]s`, s.TmpDir, auditDirectives(s.Audit), umap, inc.String())
}

// auditDirectives are the SecAudit* lines for a.
func auditDirectives(a *AuditLog) string {
	if a == nil {
		return "SecAuditEngine Off\n"
	}
	engine, parts := "On", a.Parts
	if a.Relevant {
		engine = "RelevantOnly"
	}
	if parts == "" {
		parts = "ABCFHZ"
	}
	s := fmt.Sprintf("SecAuditEngine %s\nSecAuditLogFormat JSON\nSecAuditLogParts %s\nSecAuditLogType %s\nSecAuditLog %s\n", engine, parts, a.Type, a.File)
	if a.Type == Concurrent {
		s += fmt.Sprintf("SecAuditLogStorageDir %s\nSecAuditLogDirMode 0777\nSecAuditLogFileMode 0666\n", a.StorageDir)
	}
	return s
}
