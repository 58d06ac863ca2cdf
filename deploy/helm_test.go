package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wafcanary/wafcanary/config"
	"github.com/wafcanary/wafcanary/node"
)

// helmVersion is the helm CI installs (the Go module proxy serves it).
const helmVersion = "v3.22.0"

// helm finds the helm command, or builds it from its Go module as .ci/run
// does (there is no other way to get it here).
func helm(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	gobin := filepath.Join(os.TempDir(), "wafcanary-helm-"+helmVersion) // where .ci/run puts it
	p := filepath.Join(gobin, "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	cmd := exec.Command("go", "install", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building helm %s from its module: %v\n%s", helmVersion, err, out)
	}
	return p
}

const chart = "helm/wafcanary"

var secrets = []string{"--set", "adminToken=0123456789abcdef0123", "--set", "routingSecret=fedcba9876543210fedc"}

// `helm lint` passes without a warning, and `helm template` renders N
// replicas in etcd mode with the secrets as Secrets, a Service, a
// ServiceMonitor, the dashboards for Grafana's sidecar and probes on
// /healthz, and a wafcanary.yaml that wafcanary's own decoder and Validate
// accept. Without secrets it refuses, saying which.
func TestHelmChart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds helm from its module the first time (about 2 minutes)")
	}
	h := helm(t)
	out, err := exec.Command(h, append([]string{"lint", "--strict", chart}, secrets...)...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("[WARNING]")) || bytes.Contains(out, []byte("[ERROR]")) {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	args := append([]string{"template", "edge", chart, "--set", "serviceMonitor.enabled=true", "--set", "dashboards.enabled=true", "--set", "replicaCount=4"}, secrets...)
	out, err = exec.Command(h, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	kinds := map[string]int{}
	var deployment, cm, dashboards, secret map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc == nil {
			continue
		}
		kind, _ := doc["kind"].(string)
		kinds[kind]++
		name, _ := doc["metadata"].(map[string]any)["name"].(string)
		switch {
		case kind == "Deployment":
			deployment = doc
		case kind == "Secret":
			secret = doc
		case kind == "ConfigMap" && strings.HasSuffix(name, "-dashboards"):
			dashboards = doc
		case kind == "ConfigMap":
			cm = doc
		}
	}
	if kinds["Deployment"] != 1 || kinds["Service"] != 1 || kinds["Secret"] != 1 || kinds["ServiceMonitor"] != 1 || kinds["ConfigMap"] != 2 {
		t.Fatalf("rendered kinds %v\n%s", kinds, out)
	}
	spec := deployment["spec"].(map[string]any)
	pod := spec["template"].(map[string]any)["spec"].(map[string]any)
	c := pod["containers"].([]any)[0].(map[string]any)
	if spec["replicas"] != 4 || !strings.Contains(yamlOf(c["readinessProbe"]), "/healthz") || !strings.Contains(yamlOf(c["livenessProbe"]), "/healthz") ||
		!strings.Contains(yamlOf(c["env"]), "secretKeyRef") || !strings.Contains(yamlOf(c["securityContext"]), "readOnlyRootFilesystem: true") {
		t.Errorf("deployment: replicas %v\n%s", spec["replicas"], yamlOf(c))
	}
	if strings.Contains(yamlOf(deployment), "0123456789abcdef0123") || !strings.Contains(yamlOf(secret), "0123456789abcdef0123") {
		t.Error("the token must be in the Secret only")
	}
	// The configuration as wafcanary reads it, with the env the pod sets.
	var cfg node.Config = node.Default()
	body := cm["data"].(map[string]any)["wafcanary.yaml"].(string)
	if err := config.DecodeYAML([]byte(body), &cfg); err != nil {
		t.Fatalf("wafcanary.yaml: %v\n%s", err, body)
	}
	cfg.Admin.Token, cfg.Routing.HashSecret = "0123456789abcdef0123", "fedcba9876543210fedc"
	if err := cfg.Validate(); err != nil || cfg.State.Backend != "etcd" || cfg.Rollout.MetricsSource != "prometheus" || cfg.Admin.Listen != "0.0.0.0:9090" {
		t.Errorf("wafcanary.yaml: %v, backend %q, metrics %q\n%s", err, cfg.State.Backend, cfg.Rollout.MetricsSource, body)
	}
	// The admin listener answers the Service's names: a CLI or browser in
	// the cluster reaches the API by them (the Host check refuses others).
	if !slices.Contains(cfg.Admin.AllowedHosts, "edge-wafcanary.default.svc") || !slices.Contains(cfg.Admin.AllowedHosts, "edge-wafcanary") {
		t.Errorf("admin.allowed_hosts %q, want the Service's names", cfg.Admin.AllowedHosts)
	}
	// The dashboards are the repository's, byte for byte.
	data := dashboards["data"].(map[string]any)
	for _, name := range []string{"wafcanary-overview.json", "wafcanary-rollout.json"} {
		want, _ := os.ReadFile(filepath.Join("..", "dashboards", name))
		if got, _ := data[name].(string); strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
			t.Errorf("%s in the chart differs from dashboards/%s: copy it again", name, name)
		}
	}
	out, err = exec.Command(h, "template", "edge", chart).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "adminToken and routingSecret must each be at least 16 characters") {
		t.Errorf("template without secrets: %v\n%s", err, out)
	}
}

// With spoa.enabled each replica runs the SPOE agent, beside the proxy or
// (spoa.proxy false) alone, with its port on the pod and the Service, and
// a wafcanary.yaml that wafcanary accepts.
func TestHelmChartRunsAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds helm from its module the first time (about 2 minutes)")
	}
	h := helm(t)
	for _, alone := range []bool{false, true} {
		args := append([]string{"template", "edge", chart, "--set", "spoa.enabled=true", "--set", fmt.Sprintf("spoa.proxy=%v", !alone)}, secrets...)
		out, err := exec.Command(h, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, out)
		}
		var cm, svc, deployment string
		dec := yaml.NewDecoder(bytes.NewReader(out))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); err != nil {
				break
			}
			switch doc["kind"] {
			case "ConfigMap":
				if d, ok := doc["data"].(map[string]any)["wafcanary.yaml"].(string); ok {
					cm = d
				}
			case "Service":
				svc = yamlOf(doc)
			case "Deployment":
				deployment = yamlOf(doc)
			}
		}
		cfg := node.Default()
		if err := config.DecodeYAML([]byte(cm), &cfg); err != nil {
			t.Fatalf("wafcanary.yaml: %v\n%s", err, cm)
		}
		cfg.Admin.Token, cfg.Routing.HashSecret = "0123456789abcdef0123", "fedcba9876543210fedc"
		if err := cfg.Validate(); err != nil || cfg.SPOA.Listen != "0.0.0.0:9000" || (cfg.Listen == "") != alone {
			t.Errorf("alone %v: %v, listen %q, spoa.listen %q", alone, err, cfg.Listen, cfg.SPOA.Listen)
		}
		for what, doc := range map[string]string{"Service": svc, "Deployment": deployment} {
			if !strings.Contains(doc, "name: spoa") || strings.Contains(doc, "name: proxy") != !alone {
				t.Errorf("alone %v: %s ports:\n%s", alone, what, doc)
			}
		}
	}
}

func yamlOf(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}
