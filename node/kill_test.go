package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/rollout"
)

// childEnv carries a Config, as JSON, to TestChildNode in a child process.
const childEnv = "WAFCANARY_TEST_CHILD_CONFIG"

// TestChildNode is not a test: it is the process TestKillNineAtRandomMoments
// kills. Run by that test with childEnv set, it serves as `wafcanary serve`
// does (SIGHUP reloads) until it is killed; otherwise it returns at once.
func TestChildNode(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		os.Exit(3)
	}
	s, err := New(cfg, quietLogger(), "test")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child start:", err)
		os.Exit(3)
	}
	pl, err1 := net.Listen("tcp", cfg.Listen)
	al, err2 := net.Listen("tcp", cfg.Admin.Listen)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(os.Stderr, "child listen:", err)
		os.Exit(3)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := s.Reload(); err != nil {
				fmt.Fprintln(os.Stderr, "child reload:", err)
			}
		}
	}()
	err = s.Run(context.Background(), pl, al)
	fmt.Fprintln(os.Stderr, "child run:", err)
	os.Exit(1)
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// child is one run of TestChildNode.
type child struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	api    *admin.Client
	exited chan struct{}
}

func startChild(t *testing.T, cfg Config) *child {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	c := &child{stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestChildNode$", "-test.count=1")
	c.cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() { c.kill() })
	c.api = &admin.Client{URL: "http://" + cfg.Admin.Listen, Token: cfg.Admin.Token, Timeout: time.Minute}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-c.exited:
			t.Fatalf("the process did not start again (a crash loop from the state?): %s\n%s", c.cmd.ProcessState, c.stderr)
		default:
		}
		if _, err := c.api.Status(context.Background()); err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process did not answer within 60s:\n%s", c.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill() // SIGKILL: no deferred function, no flush
	<-c.exited
}

// act is one operator action against the child, acknowledged or not.
type act struct {
	what   string
	reason string // unique: how the journal entry is found
}

// TestKillNineAtRandomMoments kills the process with SIGKILL at random
// moments while it starts rollouts (gates included), analyses, promotes,
// rolls back, undoes and reloads, under light traffic; after each kill it
// starts it again on the same state_dir. The process must start every
// time, every action it acknowledged must be in the journal, in order,
// and what serves must be what the state says.
func TestKillNineAtRandomMoments(t *testing.T) {
	rounds := 16
	if testing.Short() {
		rounds = 4
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	cfg := rolloutConfig(t, newUpstream(t).URL)
	cfg.Listen, cfg.Admin.Listen = freeAddr(t), freeAddr(t)
	cfg.Admin.Token = "kill-nine-test-token-0123456789"
	// The controller analyses on its own, often, so kills land in
	// analyses and advances too.
	cfg.Rollout.Interval = time.Second
	cfg.Rollout.Steps = []rollout.Step{{Percent: 0, MinRequests: 40}, {Percent: 50, MinRequests: 40}, {Percent: 100, MinRequests: 40}}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // traffic, whether or not the process is up
		defer wg.Done()
		client := &http.Client{Timeout: 2 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			req, _ := http.NewRequest("GET", "http://"+cfg.Listen+"/products?id="+fmt.Sprint(i%50), nil)
			req.Header.Set("X-Client-ID", fmt.Sprint("client-", i%200))
			req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
			req.Header.Set("Accept", "text/html")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })

	var acked []act
	ctx := context.Background()
	for round := range rounds {
		c := startChild(t, cfg)
		check(t, c, cfg, acked, round)

		st, _ := c.api.Status(ctx)
		a := act{reason: fmt.Sprintf("[round %d]", round)}
		var do func() error
		unchanged := "" // an action's answer that it changed nothing: not journalled
		switch active := rollout.Phase(st.State).Active(); {
		case !active && rng.IntN(3) > 0:
			a.what = "start"
			// Either: after a promotion or an undo, one of them is the
			// baseline, and starting it again is refused (400), not lost.
			cand := []string{"embedded:candidate-exclusion.conf", "embedded:candidate-pl2.conf"}[rng.IntN(2)]
			do = func() error {
				_, err := c.api.Start(ctx, admin.StartRequest{Candidate: cand, Actor: "test", Reason: a.reason})
				return err
			}
		case !active && len(st.Baselines) > 1:
			a.what = "undo"
			do = func() error {
				// After an undo, another undoes nothing: it succeeds and
				// journals nothing (undo --to the promoted one would).
				st, err := c.api.Do(ctx, admin.Undo, admin.ActionRequest{Actor: "test", Reason: a.reason})
				unchanged = st.Unchanged
				return err
			}
		case !active:
			a.what = "reload"
		default:
			pause := "pause"
			if rollout.Phase(st.State) == rollout.Paused {
				pause = "resume" // a second pause changes nothing and journals nothing
			}
			a.what = []string{"promote", "rollback", pause, "reload", "analysis"}[rng.IntN(5)]
			if action := admin.Action(a.what); a.what != "reload" && a.what != "analysis" {
				do = func() error {
					_, err := c.api.Do(ctx, action, admin.ActionRequest{Actor: "test", Reason: a.reason, Full: action == admin.Promote})
					return err
				}
			}
		}
		if a.what == "reload" {
			do = func() error { return c.cmd.Process.Signal(syscall.SIGHUP) }
		}
		done := make(chan error, 1)
		if do != nil {
			go func() { done <- do() }()
		}
		// Half the kills land within the action (a start's gates take
		// about a second, an action's record a few milliseconds), the
		// rest after it, in the analyses and advances that follow.
		wait := rng.IntN(1500)
		if rng.IntN(2) == 0 {
			wait = rng.IntN(50)
		}
		time.Sleep(time.Duration(wait) * time.Millisecond)
		c.kill()
		select {
		case err := <-done:
			// Only an answer that arrived before the kill is an
			// acknowledgement; a SIGHUP and an analysis are not journalled
			// unless they change something.
			if err == nil && a.what != "reload" && unchanged == "" {
				acked = append(acked, a)
				t.Logf("round %d: %s acknowledged, then killed", round, a.what)
			} else {
				t.Logf("round %d: %s, killed (%v)", round, a.what, err)
			}
		default:
			t.Logf("round %d: %s killed before it answered", round, a.what)
		}
	}
	c := startChild(t, cfg)
	check(t, c, cfg, acked, rounds)
}

// check looks at a restarted process: every acknowledged action is in its
// journal in order, and the share and rulesets it serves (its metrics) are
// the ones its state names.
func check(t *testing.T, c *child, cfg Config, acked []act, round int) {
	t.Helper()
	ctx := context.Background()
	h, err := c.api.History(ctx, 0)
	if err != nil {
		t.Fatalf("round %d: history: %v", round, err)
	}
	i := 0
	for _, e := range h {
		if i < len(acked) && strings.Contains(e.Reason, acked[i].reason) {
			i++
		}
	}
	if i < len(acked) {
		t.Fatalf("round %d: acknowledged %s (%q) is not in the journal after a kill -9", round, acked[i].what, acked[i].reason)
	}
	st, err := c.api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + cfg.Admin.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	weight, _ := metricValue(body.String(), "wafcanary_candidate_weight_ratio")
	served := weight * 100
	active := rollout.Phase(st.State).Active()
	if !active && (st.Candidate != nil || served != 0) || active && (st.Candidate == nil || served != st.CandidatePercent) {
		t.Fatalf("round %d: state %s at %v%% with candidate %v, but %v%% is served", round, st.State, st.CandidatePercent, st.Candidate, served)
	}
	if !servesVersion(body.String(), "baseline", st.Baseline.Version) {
		t.Fatalf("round %d: the state's baseline %s does not serve", round, st.Baseline.Version)
	}
	if active {
		if !servesVersion(body.String(), "candidate", st.Candidate.Version) {
			t.Fatalf("round %d: the state's candidate %s does not serve", round, st.Candidate.Version)
		}
	}
	if j := slices.IndexFunc(h, func(e rollout.Entry) bool { return e.Action == rollout.ActionUnreadable }); j >= 0 {
		t.Errorf("round %d: unreadable journal line: %s", round, h[j].Reason)
	}
}
