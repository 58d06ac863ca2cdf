package router

import (
	"fmt"
	"slices"

	"github.com/wafcanary/wafcanary/verdict"
)

// MaxHosts bounds a rollout's host list: each host is a label value of
// wafcanary_rollout_hosts, and a list longer than this is better written
// as no list at all.
const MaxHosts = 50

// Hosts is the set of hosts a candidate judges (start --hosts); requests
// for any other host are served by the baseline and are not evidence. It
// is immutable once made; nil means every host.
type Hosts struct {
	list []string // sorted, as HostName writes them
	set  map[string]struct{}
}

// NewHosts returns the set of names, nil for none. Names are compared as
// verdict.HostName writes them; one verdict.ValidHostName refuses, or a
// list over MaxHosts, is refused.
func NewHosts(names []string) (*Hosts, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if len(names) > MaxHosts {
		return nil, fmt.Errorf("hosts: %d names, at most %d", len(names), MaxHosts)
	}
	h := &Hosts{set: map[string]struct{}{}}
	for i, n := range names {
		if !verdict.ValidHostName(n) {
			return nil, fmt.Errorf("hosts[%d]: want a host name such as shop.example.com (lower case, no port, no wildcard), got %q", i, n)
		}
		if _, dup := h.set[n]; !dup {
			h.set[n] = struct{}{}
			h.list = append(h.list, n)
		}
	}
	slices.Sort(h.list)
	return h, nil
}

// Judges reports whether the candidate judges a request for host: always
// when h is nil.
func (h *Hosts) Judges(host string) bool {
	if h == nil {
		return true
	}
	_, ok := h.set[verdict.HostName(host)]
	return ok
}

// List returns the names, sorted; nil for every host.
func (h *Hosts) List() []string {
	if h == nil {
		return nil
	}
	return slices.Clone(h.list)
}

// Equal reports whether h and o hold the same names.
func (h *Hosts) Equal(o *Hosts) bool {
	if h == nil || o == nil {
		return h == o
	}
	return slices.Equal(h.list, o.list)
}
