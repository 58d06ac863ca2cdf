package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/metrics"
)

// `wafcanary version` and wafcanary_build_info say the same: both read
// the build once, through metrics.ReadBuild.
func TestVersionIsTheBuildInfo(t *testing.T) {
	cmd := newVersionCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics.New(reg, buildVersion())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for _, f := range families {
		if f.GetName() == "wafcanary_build_info" {
			for _, l := range f.GetMetric()[0].GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
		}
	}
	want := fmt.Sprintf("wafcanary %s\n  go          %s\n  coraza      %s\n  coreruleset %s\n", labels["version"], labels["goversion"], labels["coraza"], labels["coreruleset"])
	if out.String() != want {
		t.Errorf("version printed\n%s\nwafcanary_build_info says\n%s", out.String(), want)
	}
	if labels["coraza"] == "unknown" || labels["coreruleset"] == "unknown" {
		t.Errorf("a dependency's version is not read: %v", labels)
	}
}
