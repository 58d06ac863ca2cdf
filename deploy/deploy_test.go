package deploy

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/wafcanary/wafcanary/fleet/fleettest"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
	stage     int
}

func dockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	stage := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if strings.HasSuffix(l, `\`) {
			cur.WriteString(strings.TrimSuffix(l, `\`) + " ")
			continue
		}
		cur.WriteString(l)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{cmd, strings.TrimSpace(args), stage})
	}
	return out
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
	buildOut  []byte
)

// buildLikeTheImage runs the Dockerfile's own `go build` line from the
// repository's root, with VERSION set, into a temporary directory.
func buildLikeTheImage(t *testing.T, ins []instruction) string {
	t.Helper()
	var line string
	for _, i := range ins {
		if i.cmd == "RUN" && strings.Contains(i.args, "go build") {
			line = i.args
		}
	}
	if line == "" {
		t.Fatal("the Dockerfile has no RUN ... go build line")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wafcanary-image-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "wafcanary")
		cmdline := strings.ReplaceAll(strings.ReplaceAll(line, "${VERSION}", "image-test"), "/out/wafcanary", binary)
		cmd := exec.Command("sh", "-c", cmdline)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("the image's go build: %v\n%s", buildErr, buildOut)
	}
	return binary
}

// The Dockerfile builds a static binary with the flags it names and runs
// it as a non-root user from a minimal base with state_dir as a volume.
// No registry is reachable in CI, so the file is linted against what the
// image must be, and TestImageBuild runs the build stage's command.
func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	var froms, users, volumes, envs []string
	final := 0
	for _, i := range ins {
		final = i.stage
	}
	for _, i := range ins {
		switch i.cmd {
		case "FROM":
			froms = append(froms, i.args)
		case "USER":
			if i.stage == final {
				users = append(users, i.args)
			}
		case "VOLUME":
			volumes = append(volumes, i.args)
		case "ENV":
			envs = append(envs, i.args)
		case "ADD":
			t.Errorf("ADD %s: use COPY (ADD fetches URLs and unpacks archives)", i.args)
		case "ENTRYPOINT", "CMD":
			if !strings.HasPrefix(i.args, "[") {
				t.Errorf("%s %s: use the exec form, so signals reach wafcanary (SIGHUP reloads, SIGTERM drains)", i.cmd, i.args)
			}
		}
	}
	goMod, _ := os.ReadFile("../go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if len(froms) != 2 || goVersion == nil || !strings.HasPrefix(froms[0], "golang:"+string(goVersion[1])) || !strings.Contains(froms[1], "distroless/static") {
		t.Errorf("stages %q: want golang:%s for the build and a distroless static base", froms, goVersion[1])
	}
	if len(users) != 1 || users[0] == "root" || strings.HasPrefix(users[0], "0") {
		t.Errorf("final stage USER %q: want a non-root user", users)
	}
	if len(volumes) != 1 || !strings.Contains(volumes[0], `"/var/lib/wafcanary"`) || !strings.Contains(strings.Join(envs, " "), "WAFCANARY_STATE_DIR=/var/lib/wafcanary") {
		t.Errorf("volumes %q, env %q: state_dir must be the volume", volumes, envs)
	}
}

// imageEnv runs TestImageBuild: the Dockerfile's `go build` compiles every
// package again (CGO_ENABLED=0 and -trimpath share nothing with the tests'
// build cache), minutes on two cores after a change or on a fresh cache,
// so .ci/run runs it in a step of its own and `go test ./...` leaves it.
const imageEnv = "TEST_IMAGE_BUILD"

// The binary the image ships: the Dockerfile's own build line gives a
// static binary that names its version and CRS, and loads the image's
// configuration with the image's environment.
func TestImageBuild(t *testing.T) {
	if os.Getenv(imageEnv) == "" {
		t.Skipf("runs the Dockerfile's go build (every package again): set %s=1 to run (.ci/run runs it alone)", imageEnv)
	}
	bin := buildLikeTheImage(t, dockerfile(t))
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked: the distroless static base has no libc")
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "wafcanary image-test\n") || !strings.Contains(string(out), "coreruleset v4.") {
		t.Errorf("version: %v\n%s", err, out)
	}
	// The image's configuration with its environment loads.
	cmd := exec.Command(bin, "validate", "--config", "../configs/wafcanary.yaml", "embedded:baseline.conf")
	cmd.Env = append(os.Environ(), "WAFCANARY_LISTEN=0.0.0.0:8080", "WAFCANARY_ADMIN_LISTEN=0.0.0.0:9090", "WAFCANARY_ADMIN_TOKEN=0123456789abcdef0123", "WAFCANARY_STATE_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the image's configuration: %v\n%s", err, out)
	}
}

// The systemd unit passes `systemd-analyze verify` without a warning and
// keeps its hardening.
func TestSystemdUnit(t *testing.T) {
	analyze := fleettest.Require(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("systemd/wafcanary.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=wafcanary", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "ExecReload=/bin/kill -HUP $MAINPID",
		"Environment=WAFCANARY_STATE_DIR=/var/lib/wafcanary", "ExecStart=/usr/local/bin/wafcanary serve --config /etc/wafcanary/wafcanary.yaml"} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("the unit lacks %q", want)
		}
	}
	// verify checks that ExecStart names an executable file; it does not
	// run it. Point it at this test's own binary: building wafcanary for
	// it is TestImageBuild's work.
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "wafcanary.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/wafcanary", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
