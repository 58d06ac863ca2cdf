package router

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/verdict"
)

// blockRecorder is a BlockObserver that keeps what it is told.
type blockRecorder struct {
	mu     sync.Mutex
	blocks []verdict.Block
}

func (b *blockRecorder) ObserveBlock(x verdict.Block) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.blocks = append(b.blocks, x)
}

func (b *blockRecorder) BlockBody() int { return 1 << 10 }

func (b *blockRecorder) byID(id string) []verdict.Block {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []verdict.Block
	for _, x := range b.blocks {
		if x.Request.ID == id {
			out = append(out, x)
		}
	}
	return out
}

// The candidate's new blocks seen in shadow reach the block observers,
// marked Shadow, with the candidate's verdict, version and the body, so
// that they can be captured and tuned; a request both rulesets block is
// observed once, as the block that happened; and the baseline judging in
// shadow (a client on the candidate's arm) is never a shadow block.
func TestShadowNewBlocksAreObserved(t *testing.T) {
	fp := demo.FalsePositiveRequests()[0] // blocked by the baseline, let through by candidate-exclusion
	for _, tt := range []struct {
		name      string
		share     Share
		id        string
		body      string
		wantArm   verdict.Arm
		wantCount int
		shadow    bool
	}{
		// The shipped exclusion as the baseline, the plain baseline as
		// the candidate: the ticket is the candidate's new block.
		{"new block in shadow", 0, "ticket-shadow", fp.Body, verdict.Candidate, 1, true},
		{"on the candidate's arm, enforced", MaxShare, "ticket-enforced", fp.Body, verdict.Candidate, 1, false},
		{"an attack both block", 0, "attack", "email=x&subject=x&message=1'+UNION+SELECT+password+FROM+users--", verdict.Baseline, 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			blocks := &blockRecorder{}
			snap := &Snapshot{Baseline: load(t, shipped("candidate-exclusion.conf")), Candidate: load(t, shipped("baseline.conf")), Share: tt.share, ShadowSample: MaxShare}
			f := newFixture(t, snap, nil, func(o *Options) { o.Observe.Blocks = append(o.Observe.Blocks, blocks) })
			hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Host": "shop.example"}
			f.do(t, fp.Method, fp.Path, tt.id, strings.NewReader(tt.body), hdr)
			f.rec.nextShadow(t) // the pair is recorded before the shadow block is offered
			deadline := time.Now().Add(5 * time.Second)
			for len(blocks.byID(tt.id)) < tt.wantCount && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // and no second one
			got := blocks.byID(tt.id)
			if len(got) != tt.wantCount {
				t.Fatalf("%d blocks observed, want %d: %+v", len(got), tt.wantCount, got)
			}
			b := got[0]
			if b.Shadow != tt.shadow || b.Record.Arm != tt.wantArm || !b.Record.Verdict.Blocked || b.Version != snap.Ruleset(tt.wantArm).Version || string(b.Body) != tt.body {
				t.Errorf("observed %+v (shadow %v, arm %s, version %s, body %q)", b.Record, b.Shadow, b.Record.Arm, b.Version, b.Body)
			}
			if tt.shadow && (b.Record.Status != 403 || b.Record.Verdict.RuleID != 949110) {
				t.Errorf("the shadow block says the candidate would answer %d by rule %d", b.Record.Status, b.Record.Verdict.RuleID)
			}
		})
	}
}
