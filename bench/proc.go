package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the user plus system CPU time a process has used, from
// /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	_, ticks, err := parseStat(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// parseStat returns the parent PID and utime+stime (in clock ticks) from
// the contents of /proc/PID/stat. The command name, field 2, is in
// parentheses and may itself hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(b []byte) (ppid int, ticks int64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("only %d fields", len(f)+2)
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("ppid: %w", err)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("utime/stime: %q %q", f[11], f[12])
	}
	return ppid, ut + st, nil
}

// memKB reads a kB field such as VmHWM (peak resident set) or VmRSS from
// /proc/PID/status.
func memKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, field)
}

func parseStatusKB(b []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
		return strconv.ParseInt(num, 10, 64)
	}
	return 0, fmt.Errorf("no %s line", field)
}

// children lists the processes whose parent is pid (nginx's workers).
func children(pid int) []int {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited since the glob
		}
		ppid, _, err := parseStat(b)
		if err != nil || ppid != pid {
			continue
		}
		if c, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// sumCPU is the CPU time used so far by all of pids.
func sumCPU(pids []int) time.Duration {
	var total time.Duration
	for _, p := range pids {
		if d, err := procCPU(p); err == nil {
			total += d
		}
	}
	return total
}

// sumMemKB sums a /proc/PID/status field over pids. For nginx this counts
// pages shared between master and workers more than once: an upper bound.
func sumMemKB(pids []int, field string) int64 {
	var total int64
	for _, p := range pids {
		if kb, err := memKB(p, field); err == nil {
			total += kb
		}
	}
	return total
}

// exited reports whether a child has ended: it is a zombie not yet waited
// for, or gone.
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}
