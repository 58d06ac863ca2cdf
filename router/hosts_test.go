package router

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/verdict"
)

// start --hosts: the candidate judges only the named hosts, enforcing
// and in shadow; every other host is the baseline's and is marked
// outside, so it is not evidence.
func TestHostsLimitTheCandidate(t *testing.T) {
	hosts, err := NewHosts([]string{"shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	ticket := "email=jane%40example.com&subject=Hi&message=I+added+the+server+IP+to+%2Fetc%2Fhosts"
	f := newFixture(t, &Snapshot{Baseline: load(t, shipped("baseline.conf")), Candidate: load(t, shipped("candidate-exclusion.conf")),
		Share: MaxShare, ShadowSample: MaxShare, Hosts: hosts}, nil, nil)
	for i, c := range []struct {
		host    string
		arm     verdict.Arm
		outside bool
		status  int
	}{
		{"shop.example", verdict.Candidate, false, 201},
		{"SHOP.example:8080", verdict.Candidate, false, 201},
		{"blog.example", verdict.Baseline, true, 403},
		{"shop.example.evil", verdict.Baseline, true, 403},
	} {
		id := fmt.Sprintf("hosts-%d", i)
		resp, _ := f.do(t, "POST", "/support/tickets", id, strings.NewReader(ticket), map[string]string{"Host": c.host, "Content-Type": "application/x-www-form-urlencoded"})
		if resp.StatusCode != c.status && !(c.status == 201 && resp.StatusCode == 200) {
			t.Errorf("%s: status %d, want %d", c.host, resp.StatusCode, c.status)
		}
		rec := f.rec.byID(t, id)
		if rec.Arm != c.arm || rec.Outside != c.outside {
			t.Errorf("%s: arm %s outside %v, want %s %v", c.host, rec.Arm, rec.Outside, c.arm, c.outside)
		}
		if !c.outside {
			if s := f.rec.nextShadow(t); s.ID != id {
				t.Errorf("%s: shadow pair for %s", c.host, s.ID)
			}
		}
	}
	select {
	case s := <-f.rec.shadows:
		t.Errorf("a host outside the rollout was shadowed: %s", s.ID)
	case <-time.After(200 * time.Millisecond):
	}
	for _, bad := range [][]string{{"Shop.example"}, {"*.example"}, {"a.example:80"}, make([]string, MaxHosts+1)} {
		if _, err := NewHosts(bad); err == nil {
			t.Errorf("hosts %q accepted", bad)
		}
	}
	a, _ := NewHosts([]string{"b.example", "a.example", "b.example"})
	b, _ := NewHosts([]string{"a.example", "b.example"})
	if !a.Equal(b) || strings.Join(a.List(), ",") != "a.example,b.example" || !(*Hosts)(nil).Judges("any") {
		t.Errorf("hosts %v and %v", a.List(), b.List())
	}
}
