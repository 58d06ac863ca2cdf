#!/bin/sh
# Installs what `make bench` drives and compares against, when missing:
# wrk, nginx, ModSecurity v3 for nginx, Debian's OWASP CRS, and HAProxy.
set -eu
missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || missing="$missing nginx"
[ -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] || missing="$missing libnginx-mod-http-modsecurity"
[ -d /usr/share/modsecurity-crs/rules ] || missing="$missing modsecurity-crs"
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
[ -z "$missing" ] && exit 0
echo "bench: installing$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
