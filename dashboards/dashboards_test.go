// Package dashboards holds wafcanary's Grafana dashboards. Its tests prove
// every PromQL expression in them, and in the shipped Prometheus rules,
// against a real Prometheus scraping a real wafcanary.
package dashboards

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wafcanary/wafcanary/fleet/fleettest"
)

var dashboardFiles = []string{"wafcanary-rollout.json", "wafcanary-overview.json"}

const rulesFile = "../configs/prometheus/wafcanary-rules.yml"

// dashboard is the part of Grafana's dashboard model the checks read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string          `json:"name"`
			Expr       string          `json:"expr"`
			Datasource json.RawMessage `json:"datasource"`
			BuiltIn    int             `json:"builtIn"`
		} `json:"list"`
	} `json:"annotations"`
}

type panel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  json.RawMessage `json:"datasource"`
	Targets     []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Panels []panel `json:"panels"` // collapsed rows
}

// query is one PromQL expression with where it comes from.
type query struct{ where, expr string }

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	out := map[string]dashboard{}
	for _, f := range dashboardFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func dashboardQueries(t *testing.T) []query {
	var qs []query
	for f, d := range loadDashboards(t) {
		for _, p := range allPanels(d.Panels) {
			for _, tg := range p.Targets {
				qs = append(qs, query{fmt.Sprintf("%s panel %d %q target %s", f, p.ID, p.Title, tg.RefID), tg.Expr})
			}
		}
		for _, a := range d.Annotations.List {
			if a.BuiltIn == 0 {
				qs = append(qs, query{fmt.Sprintf("%s annotation %q", f, a.Name), a.Expr})
			}
		}
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].where < qs[j].where })
	return qs
}

type ruleGroups struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleQueries lists the rules' expressions and recorded series, leaving
// out the fleet-only group: the single node the Prometheus test scrapes
// exports no fleet series (wafcanary_fleet_leader, _state_store_up, which
// fleet's tests check), and promtool's unit tests run those rules.
func ruleQueries(t *testing.T) (exprs []query, records []string) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rg ruleGroups
	if err := yaml.Unmarshal(b, &rg); err != nil {
		t.Fatal(err)
	}
	for _, g := range rg.Groups {
		if strings.HasSuffix(g.Name, "-fleet-alerts") {
			continue
		}
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			exprs = append(exprs, query{fmt.Sprintf("rule %s/%s", g.Name, name), r.Expr})
			if r.Record != "" {
				records = append(records, r.Record)
			}
		}
	}
	return exprs, records
}

// TestDashboardStructure checks what Grafana relies on and a reader
// expects: unique panel ids, every target on the datasource variable,
// nothing tied to one instance, a description and unit on every panel.
func TestDashboardStructure(t *testing.T) {
	uids := map[string]bool{}
	for f, d := range loadDashboards(t) {
		if d.UID == "" || uids[d.UID] || d.Title == "" {
			t.Errorf("%s: uid %q missing or repeated, title %q", f, d.UID, d.Title)
		}
		uids[d.UID] = true
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d is older than Grafana 10's model", f, d.SchemaVersion)
		}
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Type
		}
		if vars["datasource"] != "datasource" || vars["job"] != "query" || vars["instance"] != "query" {
			t.Errorf("%s: variables %v, want datasource, job and instance", f, vars)
		}
		ids := map[int]bool{}
		for _, p := range allPanels(d.Panels) {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel id %d missing or repeated (%q)", f, p.ID, p.Title)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			if p.Description == "" || p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s panel %q: needs a description (the question it answers) and a unit", f, p.Title)
			}
			if !usesVariable(p.Datasource) {
				t.Errorf("%s panel %q: datasource %s, want ${datasource}", f, p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s panel %q: no targets", f, p.Title)
			}
			for _, tg := range p.Targets {
				if !usesVariable(tg.Datasource) {
					t.Errorf("%s panel %q target %s: datasource %s, want ${datasource}", f, p.Title, tg.RefID, tg.Datasource)
				}
				checkSelector(t, fmt.Sprintf("%s panel %q", f, p.Title), tg.Expr)
			}
		}
		for _, a := range d.Annotations.List {
			if a.BuiltIn == 0 {
				if !usesVariable(a.Datasource) {
					t.Errorf("%s annotation %q: datasource %s, want ${datasource}", f, a.Name, a.Datasource)
				}
				checkSelector(t, fmt.Sprintf("%s annotation %q", f, a.Name), a.Expr)
			}
		}
	}
}

func usesVariable(ds json.RawMessage) bool {
	var v struct{ Type, UID string }
	return json.Unmarshal(ds, &v) == nil && v.Type == "prometheus" && v.UID == "${datasource}"
}

var metricRef = regexp.MustCompile(`\bwafcanary_[a-z_]+`)

// checkSelector: every wafcanary series is selected by $job and $instance,
// and no address is written into a query.
func checkSelector(t *testing.T, where, expr string) {
	t.Helper()
	for _, loc := range metricRef.FindAllStringIndex(expr, -1) {
		rest := expr[loc[1]:]
		if !strings.HasPrefix(rest, `{job=~"$job", instance=~"$instance"`) {
			t.Errorf("%s: %s is not selected by $job and $instance: %s", where, expr[loc[0]:loc[1]], expr)
		}
	}
	if regexp.MustCompile(`\d+\.\d+\.\d+\.\d+|localhost|instance="`).MatchString(expr) {
		t.Errorf("%s: hard-coded instance in %s", where, expr)
	}
}

// TestPromtoolChecksShippedFiles runs promtool on the shipped scrape
// config (which loads the rules file), on the rules, and the rules' unit
// tests.
func TestPromtoolChecksShippedFiles(t *testing.T) {
	promtool := fleettest.Require(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "config", "../configs/prometheus/prometheus.yml"},
		{"check", "rules", rulesFile},
		// Unit tests: each alert fires on series shaped like wafcanary's
		// and stays quiet on healthy ones.
		{"test", "rules", "../configs/prometheus/wafcanary-rules.test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestQueriesAgainstRealPrometheus builds wafcanary, runs its demo (a real
// proxy with the shipped baseline and the exclusion candidate rolled out
// through shadow, 10%, 50% and 100%, with benign, attack and
// false-positive traffic), has a real Prometheus scrape it every second
// with the shipped rules loaded, and then runs every dashboard and rule
// expression: each must parse and return data, and every metric it names
// must be in wafcanary's exposition.
func TestQueriesAgainstRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wafcanary and runs it with a real Prometheus for about a minute; run without -short")
	}
	prom := fleettest.Require(t, "prometheus", "prometheus")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	bin := filepath.Join(dir, "wafcanary")
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.CommandContext(ctx, goCmd, "build", "-o", bin, "../cmd/wafcanary").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	demo := exec.CommandContext(ctx, bin, "demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--crs-suite=false", "--step-duration", "4s", "--rate", "40", "--report-every", "1h")
	demo.Dir = dir
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = demo.Process.Kill(); _ = demo.Wait() })
	metricsURL := bannerMetricsURL(t, stdout)
	target := strings.TrimSuffix(strings.TrimPrefix(metricsURL, "http://"), "/metrics")

	promAddr := freeAddr(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: wafcanary
    static_configs:
      - targets: [%q]
`, mustAbs(t, rulesFile), target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := exec.CommandContext(ctx, prom, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	p.Stderr = &tailWriter{t: t, prefix: "prometheus: "}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Process.Kill(); _ = p.Wait() })
	api := "http://" + promAddr

	// Wait until the demo's rollout has been promoted and scraped, so
	// both arms, shadow pairs, decisions and evidence are in Prometheus.
	waitFor(t, 90*time.Second, "a promotion scraped by Prometheus", func() bool {
		res, err := instantQuery(api, `wafcanary_rollout_decisions_total{decision="promote"} > 0`)
		return err == nil && len(res) > 0
	})
	time.Sleep(3 * time.Second) // a few more rule evaluations after the last change

	exposition := fetch(t, metricsURL)
	// Grafana substitutes a selected instance as is; '.' matching any
	// character is harmless here.
	vars := strings.NewReplacer("$job", "wafcanary", "$instance", target,
		"$__rate_interval", "20s", "$__range", "5m", "$__interval", "5s")
	rules, records := ruleQueries(t)
	all := append(dashboardQueries(t), rules...)
	for _, r := range records {
		all = append(all, query{"recorded series " + r, r})
	}
	withData := 0
	for _, q := range all {
		expr := vars.Replace(q.expr)
		res, err := instantQuery(api, expr)
		if err != nil {
			t.Errorf("%s: %v\n  %s", q.where, err, expr)
			continue
		}
		if len(res) == 0 {
			// An alert or filter compares a signal with a threshold; with
			// healthy traffic the comparison is rightly empty, so the
			// signal itself must have data.
			signal := trailingComparison.ReplaceAllString(expr, "")
			if signal != expr {
				res, err = instantQuery(api, signal)
				t.Logf("%s: empty as it should be with this traffic; its signal has %d series", q.where, len(res))
			}
			if err != nil || len(res) == 0 {
				t.Errorf("%s: no data (%v)\n  %s", q.where, err, expr)
				continue
			}
		}
		for _, m := range metricRef.FindAllString(q.expr, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
			if !strings.Contains(exposition, "# TYPE "+base+" ") {
				t.Errorf("%s: %s is not in wafcanary's exposition", q.where, m)
			}
		}
		withData++
	}
	t.Logf("%d of %d expressions returned data from Prometheus scraping %s", withData, len(all), target)
}

// trailingComparison is a final "> 0", "== 1" or "> 0.02" on a signal.
var trailingComparison = regexp.MustCompile(`\s*(>|>=|<|<=|==|!=)\s*[0-9.eE+-]+\s*$`)

func instantQuery(api, expr string) ([]json.RawMessage, error) {
	resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s", r.Error)
	}
	return r.Data.Result, nil
}

var bannerMetrics = regexp.MustCompile(`metrics\s+(http://\S+/metrics)`)

func bannerMetricsURL(t *testing.T, r io.Reader) string {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sent := false
		for sc.Scan() { // keep draining so the demo never blocks on its output
			if m := bannerMetrics.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(60 * time.Second):
		t.Fatal("the demo printed no metrics URL within 60 s")
	}
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func fetch(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", within, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// tailWriter passes a child's warnings to the test log.
type tailWriter struct {
	t      *testing.T
	prefix string
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimSpace(string(p)))
	return len(p), nil
}
