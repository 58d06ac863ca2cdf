package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// replayLog is a libmodsecurity v3 serial log as nginx writes it, cut
// down: a benign GET, the shipped false positive the exclusion fixes
// (blocked, 930120), and a line a crash cut short.
const replayLog = `{"transaction":{"client_ip":"10.0.0.1","time_stamp":"Mon Dec  7 14:31:31 2026","server_id":"x","client_port":1,"host_ip":"10.0.0.2","host_port":80,"unique_id":"1","request":{"method":"GET","http_version":1.1,"uri":"/search?q=tent","body":"","headers":{"Host":"shop.example.com","Accept":"text/html","Cookie":"session=s3cret"}},"response":{"http_code":200,"headers":{}},"producer":{},"messages":[]}}
{"transaction":{"client_ip":"10.0.0.1","time_stamp":"Mon Dec  7 14:31:31 2026","server_id":"x","client_port":2,"host_ip":"10.0.0.2","host_port":80,"unique_id":"2","request":{"method":"POST","http_version":1.1,"uri":"/support/tickets","body":"email=jane.doe%40example.com&subject=Dashboard+times+out&message=I+added+the+server+IP+to+%2Fetc%2Fhosts+as+your+setup+guide+says&password=hunter2","headers":{"Host":"shop.example.com","Content-Type":"application/x-www-form-urlencoded","Content-Length":"150","Cookie":"session=s3cret"}},"response":{"http_code":403,"headers":{}},"producer":{},"messages":[{"message":"OS File Access Attempt","details":{"ruleId":"930120"}},{"message":"Inbound Anomaly Score Exceeded","details":{"ruleId":"949110"}}]}}
{"transaction":{"client_ip":"10.0.0.1","time_stamp":"Mon Dec  7 14:31:31 2026","unique_id":"3","request":{"method":"GET","uri":"/`

func TestReplayCommand(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(log, []byte(replayLog), 0o644); err != nil {
		t.Fatal(err)
	}
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"replay", "--baseline", "embedded:baseline.conf", "--candidate", "embedded:candidate-exclusion.conf", "-o", "json", log})
	err := root.Execute()
	// Two pairs cannot pass the 0.1% limits: inconclusive, its own code.
	if exitCode(err) != exitReplayInconclusive {
		t.Fatalf("exit %d, %v\n%s", exitCode(err), err, out.String())
	}
	var rep struct {
		Requests   int64 `json:"requests"`
		Unreadable int64 `json:"unreadable"`
		Problems   []struct {
			Position struct{ Line int } `json:"position"`
		} `json:"problems"`
		NewBlocks  struct{ Total int64 } `json:"new_blocks"`
		LostBlocks struct {
			Total   int64
			InScope int64 `json:"in_scope"`
			Rules   []struct {
				Key      string
				Examples []struct {
					Body     string
					Header   map[string][]string
					Position struct{ Line int } `json:"position"`
				}
			}
		} `json:"lost_blocks"`
		Verdict   string `json:"verdict"`
		Agreement struct{ Compared, Agree int64 }
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if rep.Requests != 2 || rep.Unreadable != 1 || len(rep.Problems) != 1 || rep.Problems[0].Position.Line != 3 {
		t.Errorf("requests %d, unreadable %d %+v: want 2, and line 3 unreadable", rep.Requests, rep.Unreadable, rep.Problems)
	}
	if rep.Verdict != "inconclusive" || rep.NewBlocks.Total != 0 || len(rep.LostBlocks.Rules) != 1 || rep.LostBlocks.Rules[0].Key != "930120" {
		t.Fatalf("%s", out.String())
	}
	ex := rep.LostBlocks.Rules[0].Examples[0]
	if ex.Position.Line != 2 || strings.Contains(out.String(), "hunter2") || strings.Contains(out.String(), "s3cret") {
		t.Errorf("example %+v: want line 2, password and cookie redacted", ex)
	}
	if rep.Agreement.Compared != 2 || rep.Agreement.Agree != 2 {
		t.Errorf("agreement %+v", rep.Agreement)
	}

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"replay", "--baseline", "embedded:baseline.conf", "--candidate", "embedded:candidate-exclusion.conf", filepath.Join(dir, "missing.log")}, exitUsage},
		{[]string{"replay", "--baseline", "embedded:baseline.conf", "--candidate", "embedded:candidate-exclusion.conf", "--format", "pcap", log}, exitUsage},
		{[]string{"replay", "--baseline", "embedded:baseline.conf", log}, exitUsage},
	} {
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		if got := exitCode(root.Execute()); got != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, got, tc.code)
		}
	}
	if exitCode(errReplayVerdict{"fail"}) != exitReplayFail {
		t.Error("a failed replay does not exit with exitReplayFail")
	}
}
