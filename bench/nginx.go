package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/wafcanary/wafcanary/modsec"
)

// Paths of Debian's packages: nginx, libnginx-mod-http-modsecurity
// (ModSecurity v3) and modsecurity-crs (CRS 3.3.4, the reference row).
const (
	nginxModule   = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"
	debianCRSDir  = "/usr/share/modsecurity-crs/rules"
	debianCRSConf = "/etc/modsecurity/crs"
	unicodeMap    = modsec.UnicodeMap
)

// nginxConf is a complete nginx configuration for a non-daemon nginx
// under prefix: the given number of workers, access log off, keepalive
// to the upstream, ModSecurity on.
func nginxConf(prefix, listen, upstream string, workers int, asRoot bool) string {
	user := ""
	if asRoot {
		user = "user nobody nogroup;\n"
	}
	return fmt.Sprintf(`%sdaemon off;
master_process on;
worker_processes %d;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log warn;
load_module %[4]s;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[3]s/client_body;
    proxy_temp_path %[3]s/proxy;
    fastcgi_temp_path %[3]s/fastcgi;
    uwsgi_temp_path %[3]s/uwsgi;
    scgi_temp_path %[3]s/scgi;
    upstream app {
        server %[5]s;
        keepalive 256;
    }
    server {
        listen %[6]s reuseport;
        modsecurity on;
        modsecurity_rules_file %[3]s/modsec.conf;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering on;
        }
    }
}
`, user, workers, prefix, nginxModule, strings.TrimPrefix(upstream, "http://"), listen)
}

// crsSet is the CRS an nginx target loads: the files ModSecurity includes
// after its engine settings.
type crsSet struct {
	name     string
	includes func(prefix string) []string
	// prepare writes what the includes need under prefix, if anything.
	prepare func(prefix string) error
}

// crs425 is the CRS wafcanary embeds, written out for ModSecurity with
// the parser fix of modsecFix: the same rules, like for like.
var crs425 = crsSet{
	name: "CRS 4.25 (wafcanary's embedded files)",
	includes: func(prefix string) []string {
		return modsec.CRSIncludes(prefix + "/crs4")
	},
	prepare: func(prefix string) error {
		fixed, err := modsec.WriteCRS(filepath.Join(prefix, "crs4"))
		if err == nil {
			fmt.Fprintf(os.Stderr, "nginx: CRS 4.25 written for ModSecurity, \"t:none\" given to the chain links without actions at %s\n", strings.Join(fixed, ", "))
		}
		return err
	},
}

// crs334 is Debian's modsecurity-crs package: an older, smaller rule set,
// kept as a reference.
var crs334 = crsSet{
	name: "Debian's CRS 3.3.4",
	includes: func(string) []string {
		return []string{debianCRSConf + "/crs-setup.conf", debianCRSConf + "/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf",
			debianCRSDir + "/*.conf", debianCRSConf + "/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf"}
	},
	prepare: func(string) error { return nil },
}

// modsecConf mirrors wafcanary's baseline as closely as ModSecurity
// allows (modsec.Config), audit log off, with the CRS set.
func modsecConf(prefix string, crs crsSet) string {
	return modsec.Config(modsec.Settings{TmpDir: prefix + "/tmp", UnicodeMap: unicodeMap, Includes: crs.includes(prefix)})
}

// writeNginxPrefix lays out prefix for nginx -p: configuration and the
// directories nginx and ModSecurity write to, readable by the workers.
func writeNginxPrefix(prefix, listen, upstream string, workers int, crs crsSet) error {
	for _, d := range []string{"", "client_body", "proxy", "fastcgi", "uwsgi", "scgi", "tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o777); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(prefix, d), 0o777); err != nil {
			return err
		}
	}
	asRoot := os.Geteuid() == 0
	if err := os.WriteFile(filepath.Join(prefix, "nginx.conf"), []byte(nginxConf(prefix, listen, upstream, workers, asRoot)), 0o644); err != nil {
		return err
	}
	if err := crs.prepare(prefix); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(prefix, "modsec.conf"), []byte(modsecConf(prefix, crs)), 0o644)
}

// nginxReady points cmd at the nginx binary and checks, before any target
// starts, that ModSecurity and Debian's CRS are installed. Debian puts
// nginx in /usr/sbin, which a user's PATH often lacks.
func nginxReady(cmd *exec.Cmd) error {
	const fix = "run bench/deps.sh, or apt-get install nginx libnginx-mod-http-modsecurity modsecurity-crs"
	if _, err := exec.LookPath("nginx"); err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			return fmt.Errorf("nginx not found on PATH or in /usr/sbin: %s", fix)
		}
		cmd.Path, cmd.Err = "/usr/sbin/nginx", nil
	}
	for _, p := range []string{nginxModule, debianCRSDir, debianCRSConf, unicodeMap} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("nginx-modsec needs %s: %s", p, fix)
		}
	}
	return nil
}
